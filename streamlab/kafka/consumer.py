"""``KafkaConsumer``: the embedded Consumer's API over a confluent-kafka consumer.

Like the embedded consumer it keeps its own *positions* (the next offset to read, per
assigned partition) and resolves them the moment a partition is assigned: from the
group's committed offset, else from ``auto_offset_reset`` against the partition's log
start or high watermark. So ``position()`` answers before the first record arrives, a
``"latest"`` consumer sees every record produced after it was assigned, and commits
(explicit, every ``auto_commit_interval_ms`` in ``poll``, on revocation and on close)
commit those positions, as on the embedded broker.

What differs (see also :mod:`streamlab.kafka.backend`):

- A group's partitions arrive through the group protocol, during ``poll()``; until the
  first poll after subscribing, ``assignment()`` may be empty (the embedded broker
  assigns inside ``subscribe``).
- librdkafka has range, roundrobin and cooperative-sticky but no eager ``sticky``
  assignor, and cannot mix eager and cooperative assignors in one list: the list is cut
  to the assignors sharing the first one's protocol.
- ``generation`` is -1: librdkafka does not expose the group generation.

The positions, seeking and commits are in :mod:`.consumer_offsets`; reading messages
(decoding, batches, errors) is shared with the other readers in :mod:`.messages`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import confluent_kafka as ck

from streamlab.errors import ConfigError, StreamlabError
from streamlab.kafka import client_config, log, translate
from streamlab.kafka.consumer_offsets import ConsumerOffsets

# The message helpers are re-exported (see __all__) for code that imported them from here.
from streamlab.kafka.messages import check_message, ck_partition, decode_message, next_batch, to_record
from streamlab.model.names import validate_group_id
from streamlab.model.types import Record, TopicPartition
from streamlab.port.consumer_rules import warn_offset_reset
from streamlab.port.record_decode import RecordDecoder
from streamlab.port.record_frames import polled_frame

if TYPE_CHECKING:
    import pandas as pd

    from streamlab.kafka.backend import KafkaBackend

__all__ = [
    "Callback",
    "KafkaConsumer",
    "OffsetReset",
    "assignment_strategy",
    "check_message",
    "ck_partition",
    "decode_message",
    "next_batch",
    "to_record",
]

OffsetReset = Literal["earliest", "latest", "none"]
Callback = Callable[[list[TopicPartition]], None]

_ASSIGNORS = {"range": "eager", "roundrobin": "eager", "cooperative-sticky": "cooperative"}


def assignment_strategy(assignor: str | Sequence[str]) -> tuple[str, bool]:
    """librdkafka's ``partition.assignment.strategy`` for streamlab assignor names, and
    whether it is cooperative."""
    names = [assignor] if isinstance(assignor, str) else list(assignor)
    if not names:
        raise ConfigError("assignor must name at least one assignor")
    if "sticky" in names:
        raise ConfigError("librdkafka has no eager 'sticky' assignor; use 'cooperative-sticky' on kafka://")
    unknown = [n for n in names if n not in _ASSIGNORS]
    if unknown:
        raise ConfigError(f"assignor must be among {sorted(_ASSIGNORS)} on kafka://, got {assignor!r}")
    protocol = _ASSIGNORS[names[0]]
    return ",".join(n for n in names if _ASSIGNORS[n] == protocol), protocol == "cooperative"


def _remote_assignor(assignor: str | Sequence[str]) -> str | None:
    """librdkafka's ``group.remote.assignor`` for ``group_protocol="consumer"`` (None: the
    broker's default), as the embedded consumer reads ``assignor``."""
    if assignor == ("range", "cooperative-sticky") or (
        not isinstance(assignor, str) and tuple(assignor) == ("range", "cooperative-sticky")
    ):
        return None
    if assignor not in ("uniform", "range"):
        raise ConfigError(
            "with group_protocol='consumer' the broker assigns: assignor must be 'uniform' or 'range', "
            f"got {assignor!r}"
        )
    return str(assignor)


class KafkaConsumer(ConsumerOffsets):
    """Subscribe (or assign), poll, seek, commit: the embedded ``Consumer``'s API on Kafka."""

    def __init__(
        self,
        lab: KafkaBackend,
        topics: Iterable[str] | str | None = None,
        *,
        group: str | None = None,
        auto_offset_reset: OffsetReset = "latest",
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5000,
        max_poll_records: int = 500,
        client_id: str = "streamlab-consumer",
        on_assign: Callback | None = None,
        on_revoke: Callback | None = None,
        on_lost: Callback | None = None,
        assignor: str | Sequence[str] = ("range", "cooperative-sticky"),
        session_timeout_ms: int = 45_000,
        max_poll_interval_ms: int = 300_000,
        group_instance_id: str | None = None,
        heartbeat_interval_ms: int | None = None,
        kafka_config: dict[str, Any] | None = None,
        pattern: str | None = None,
        isolation_level: Literal["read_committed", "read_uncommitted"] = "read_uncommitted",
        decoder: RecordDecoder | None = None,
        group_protocol: Literal["classic", "consumer"] = "classic",
    ) -> None:
        self._decoder = decoder  # Lab.consumer's, for Confluent-framed records (port/record_decode.py)
        if isolation_level not in ("read_committed", "read_uncommitted"):
            raise ConfigError(
                f"isolation_level must be 'read_committed' or 'read_uncommitted', got {isolation_level!r}"
            )
        if auto_offset_reset not in ("earliest", "latest", "none"):
            raise ConfigError(f"auto_offset_reset must be 'earliest', 'latest' or 'none', got {auto_offset_reset!r}")
        if group is not None:
            validate_group_id(group)
        validate_group_id(client_id, what="client_id", empty_ok=True)
        if group_protocol not in ("classic", "consumer"):
            raise ConfigError(f"group_protocol must be 'classic' or 'consumer', got {group_protocol!r}")
        if group_protocol == "consumer":
            remote = _remote_assignor(assignor)
            strategy, self._cooperative = "", True  # KIP-848 reconciles incrementally
        else:
            strategy, self._cooperative = assignment_strategy(assignor)
        lab._check_open()
        self._lab = lab
        self.group = group
        self.client_id = client_id
        self._reset: OffsetReset = auto_offset_reset
        self._auto_commit = enable_auto_commit and group is not None
        self._auto_commit_interval = auto_commit_interval_ms / 1000
        self._last_auto_commit = time.monotonic()
        self._max_poll_records = max_poll_records
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        heartbeat = heartbeat_interval_ms or max(100, min(3000, session_timeout_ms // 3))
        settings: dict[str, Any] = {
            # Without a group the consumer only ever assigns, so this id never joins anything.
            "group.id": group or f"streamlab-nogroup-{uuid.uuid4().hex}",
            "client.id": client_id,
            "auto.offset.reset": {"none": "error"}.get(auto_offset_reset, auto_offset_reset),
            "enable.auto.commit": False,  # streamlab commits its own positions (see the module doc)
            "enable.auto.offset.store": False,
            "partition.assignment.strategy": strategy,
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": heartbeat,
            "max.poll.interval.ms": max(max_poll_interval_ms, session_timeout_ms),
            "fetch.wait.max.ms": 100,
            # Set always: librdkafka's default is read_committed, Kafka's (and the embedded one's) is not.
            "isolation.level": isolation_level,
            "topic.metadata.refresh.interval.ms": 5000,  # a group sees new partitions within seconds
        }
        if group_instance_id is not None:
            settings["group.instance.id"] = group_instance_id
        if group_protocol == "consumer":
            # The broker assigns and times sessions: librdkafka refuses these with group.protocol=consumer.
            for name in ("partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms"):
                del settings[name]
            settings["group.protocol"] = "consumer"
            settings["max.poll.interval.ms"] = max_poll_interval_ms
            if remote is not None:
                settings["group.remote.assignor"] = remote
        extra = {**lab.client_options, **(kafka_config or {})}
        self._consumer = ck.Consumer(client_config(lab.bootstrap, extra, **settings))
        self._subscription: list[str] = []
        self._manual = False
        self._positions: dict[TopicPartition, int | None] = {}
        self._last_refresh = time.monotonic()
        self._closed = False
        lab._adopt(self)
        if topics is not None or pattern is not None:
            try:
                self.subscribe(None if pattern is not None else topics, pattern=pattern)  # a pattern wins
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"<streamlab.KafkaConsumer group={self.group!r} assigned={len(self._positions)}>"

    # assignment -------------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str] | str | None = None, *, pattern: str | None = None) -> None:
        """Follow ``topics``, or every topic whose whole name matches the regex ``pattern``
        (in a group, librdkafka re-checks the pattern as topics appear, as Kafka's clients do)."""
        self._check_open()
        if (topics is None) == (pattern is None):
            raise ConfigError("subscribe to a list of topics or to a pattern, not both and not neither")
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from exc
            listed = self._lab.topic_names()
            names = sorted(t for t in listed if compiled.fullmatch(t))
            wanted_names = [f"^({pattern})$"]  # librdkafka's regex subscription: a leading ^
        else:
            names = [topics] if isinstance(topics, str) else list(topics or [])
            for topic in names:
                self._lab._topic_info(topic)  # UnknownTopicError, as on the embedded broker
            wanted_names = names
        self._subscription, self._manual = names, False
        if self.group is not None:
            self._consumer.subscribe(wanted_names, on_assign=self._assigned, on_revoke=self._revoked,
                                     on_lost=self._lost)  # fmt: skip
        else:
            wanted = [TopicPartition(t, p) for t in names for p in range(self._lab._topic_info(t).partitions)]
            self._set_manual(wanted)

    def subscription(self) -> list[str]:
        return list(self._subscription)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions, outside any group rebalancing."""
        self._check_open()
        wanted = list(partitions)
        for tp in wanted:
            self._lab._check_partition(tp.topic, tp.partition)
        if self.group is not None and self._subscription and not self._manual:
            self._consumer.unsubscribe()
        self._manual, self._subscription = True, []
        self._set_manual(wanted)

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def _set_manual(self, wanted: Sequence[TopicPartition]) -> None:
        revoked = [tp for tp in self._positions if tp not in wanted]
        added = [tp for tp in wanted if tp not in self._positions]
        if revoked and self._auto_commit:
            self._commit_positions(revoked)
        if revoked and self._on_revoke:
            self._on_revoke(sorted(revoked))
        for tp in revoked:
            del self._positions[tp]
        self._positions.update(self._start_positions(added))
        self._consumer.assign([self._ck(tp) for tp in self._positions])
        if added and self._on_assign:
            self._on_assign(sorted(added))

    def _start_positions(self, added: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """Where reading starts: the group's committed offset, else ``auto_offset_reset``."""
        if not added:
            return {}
        start: dict[TopicPartition, int | None] = {}
        if self.group is not None:
            try:
                stored = self._consumer.committed([ck_partition(tp) for tp in added], timeout=self._lab.timeout)
            except ck.KafkaException as exc:
                raise translate(exc, context=f"reading the committed offsets of group {self.group!r}") from exc
            start = {TopicPartition(c.topic, c.partition): c.offset for c in stored if c.offset >= 0}
        if self._reset == "none":
            return {tp: start.get(tp) for tp in added}  # past the end: librdkafka's fetch raises
        marks = self._lab._watermarks(added)
        for tp in added:
            reset_to, end = marks[tp][0 if self._reset == "earliest" else 1], marks[tp][1]
            committed = start.get(tp)
            if committed is None:
                start[tp] = reset_to
            elif committed > end:  # committed beyond the end: Kafka's OFFSET_OUT_OF_RANGE
                warn_offset_reset(tp, committed, end, self._reset, reset_to)
                start[tp] = reset_to
        return {tp: start.get(tp) for tp in added}

    def _ck(self, tp: TopicPartition) -> ck.TopicPartition:
        position = self._positions.get(tp)
        return ck_partition(tp, ck.OFFSET_INVALID if position is None else position)

    # group callbacks: librdkafka calls these inside poll(), in the caller's thread --------
    def _assigned(self, consumer: Any, partitions: list[ck.TopicPartition]) -> None:
        if self._closed:  # an assignment that lands while close() leaves the group: nothing to read
            if self._cooperative:
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)
            return
        added = [TopicPartition(p.topic, p.partition) for p in partitions]
        self._positions.update(self._start_positions([tp for tp in added if tp not in self._positions]))
        chosen = [self._ck(tp) for tp in added]
        if self._cooperative:
            consumer.incremental_assign(chosen)
        else:
            consumer.assign(chosen)
        if added and self._on_assign:
            self._on_assign(sorted(added))

    def _revoked(self, consumer: Any, partitions: list[ck.TopicPartition]) -> None:
        revoked = [tp for p in partitions if (tp := TopicPartition(p.topic, p.partition)) in self._positions]
        if revoked and self._auto_commit:
            try:
                self._commit_positions(revoked)
            except StreamlabError as exc:  # the group moved on; the next owner re-reads from the last commit
                log.warning("commit on revocation failed: %s", exc)
        if revoked and self._on_revoke:
            self._on_revoke(sorted(revoked))
        for tp in revoked:
            del self._positions[tp]
        if self._cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def _lost(self, consumer: Any, partitions: list[ck.TopicPartition]) -> None:
        lost = sorted(tp for p in partitions if (tp := TopicPartition(p.topic, p.partition)) in self._positions)
        for tp in lost:
            del self._positions[tp]
        if lost and self._on_lost:
            self._on_lost(lost)
        if self._cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def _refresh_partitions(self) -> None:
        """A subscription without a group follows partitions added to its topics."""
        if self.group is not None or self._manual or time.monotonic() - self._last_refresh < 1:
            return
        self._last_refresh = time.monotonic()
        wanted = [
            TopicPartition(t, p)
            for t in self._subscription
            for p in range(self._lab._topic_info(t, fresh=True).partitions)
        ]
        added = [tp for tp in wanted if tp not in self._positions]
        if added:
            self._positions.update(self._start_positions(added))
            self._consumer.incremental_assign([self._ck(tp) for tp in added])
            if self._on_assign:
                self._on_assign(sorted(added))

    # reading ----------------------------------------------------------------------------
    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first.
        Confluent-framed keys and values come decoded when the lab made this consumer with
        ``value_format="auto"`` (the default)."""
        records = self._poll(timeout, max_records)
        return self._decoder.records(records) if self._decoder is not None and records else records

    def _poll(self, timeout: float, max_records: int | None) -> list[Record]:
        self._check_open()
        limit = self._max_poll_records if max_records is None else max_records
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"max_records must be a positive integer, got {max_records!r}")
        self._maybe_auto_commit()
        self._refresh_partitions()
        for tp, position in self._positions.items():
            if position is None:
                raise self._no_position(tp)
        deadline = time.monotonic() + max(timeout, 0)
        while True:
            try:
                messages = next_batch(self._consumer, min(max(deadline - time.monotonic(), 0), 0.2), limit)
            except ck.KafkaException as exc:
                raise translate(exc) from exc
            records = []
            for msg in messages:
                if not check_message(msg):
                    continue
                tp = TopicPartition(msg.topic(), msg.partition())
                if tp not in self._positions:  # fetched before a revocation
                    continue
                records.append(to_record(msg))
                self._positions[tp] = msg.offset() + 1
            if records or time.monotonic() >= deadline:
                return records

    def poll_frame(
        self, timeout: float = 1.0, max_records: int | None = None, *, raw: bool = False, headers: bool = False
    ) -> pd.DataFrame:
        """One :meth:`poll` as a DataFrame shaped like ``lab.replay`` (``topic`` first, then
        partition, offset, timestamp, key and the decoded value columns; ``raw`` and
        ``headers`` as in replay), rows by topic, partition, offset. Commit after it as
        after a poll. An empty poll gives an empty frame with the same columns."""
        return polled_frame(self._poll(timeout, max_records), self._decoder, raw=raw, headers=headers)

    def consumer_group_metadata(self) -> Any:
        """librdkafka's group metadata, for ``send_offsets_to_transaction``."""
        return self._consumer.consumer_group_metadata()

    # lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Commit the positions (with auto commit), leave the group and stop. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._auto_commit and self._positions:
                self._commit_positions(list(self._positions))
        except StreamlabError as exc:
            log.warning("commit on close failed: %s", exc)
        finally:
            self._positions.clear()  # committed above: the revocation on the way out has nothing to do
            self._consumer.close()  # leaves the group
            self._lab._release(self)

    @property
    def member_id(self) -> str | None:
        if self.group is None or self._closed:
            return None
        member = self._consumer.memberid()
        return member or None

    @property
    def generation(self) -> int:
        return -1  # not exposed by librdkafka

    def __enter__(self) -> KafkaConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:
        raise TypeError("iterate with poll(timeout=..., max_records=...) so a notebook cell always ends")
