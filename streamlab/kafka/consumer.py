"""``KafkaConsumer``: the embedded Consumer's API over a confluent-kafka consumer.

Like the embedded consumer it keeps its own *positions* (the next offset to read, per
assigned partition) and resolves them the moment a partition is assigned: from the
group's committed offset, else from ``auto_offset_reset`` against the partition's log
start or high watermark. So ``position()`` answers before the first record arrives, a
``"latest"`` consumer sees every record produced after it was assigned, and commits
(explicit, every ``auto_commit_interval_ms`` in ``poll``, on revocation and on close)
commit those positions, as on the embedded broker.

What differs (see also :mod:`streamlab.kafka.lab`):

- A group's partitions arrive through the group protocol, during ``poll()``; until the
  first poll after subscribing, ``assignment()`` may be empty (the embedded broker
  assigns inside ``subscribe``).
- librdkafka has range, roundrobin and cooperative-sticky but no eager ``sticky``
  assignor, and cannot mix eager and cooperative assignors in one list: the list is cut
  to the assignors sharing the first one's protocol.
- ``generation`` is -1: librdkafka does not expose the group generation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import confluent_kafka as ck

from streamlab.client.consumer import NoGroupError
from streamlab.client.timeparse import to_ms
from streamlab.errors import ClosedError, ConfigError, InvalidOffsetError, OffsetOutOfRangeError, StreamlabError
from streamlab.kafka import KEY_FORMAT_HEADER, VALUE_FORMAT_HEADER, client_config, log, translate
from streamlab.model.serde import FMT_BYTES, FMT_JSON, FMT_NULL, FMT_STR, decode
from streamlab.model.types import OffsetAndMetadata, Record, TopicPartition

if TYPE_CHECKING:
    from streamlab.kafka.lab import KafkaLab

OffsetReset = Literal["earliest", "latest", "none"]
Callback = Callable[[list[TopicPartition]], None]

_ASSIGNORS = {"range": "eager", "roundrobin": "eager", "cooperative-sticky": "cooperative"}
_FORMATS = {str(f).encode(): f for f in (FMT_NULL, FMT_BYTES, FMT_STR, FMT_JSON)}
_QUIET = {ck.KafkaError._PARTITION_EOF}  # not an error for a notebook


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


def decode_message(msg: Any) -> tuple[bytes | None, int, bytes | None, int, list[tuple[str, bytes]]]:
    """(key, key format, value, value format, other headers) of a confluent ``Message``."""
    key, value = msg.key(), msg.value()
    key_fmt = FMT_NULL if key is None else FMT_BYTES
    value_fmt = FMT_NULL if value is None else FMT_BYTES
    headers: list[tuple[str, bytes]] = []
    for name, data in msg.headers() or ():
        if name == KEY_FORMAT_HEADER:
            key_fmt = _FORMATS.get(data, FMT_BYTES) if key is not None else FMT_NULL
        elif name == VALUE_FORMAT_HEADER:
            value_fmt = _FORMATS.get(data, FMT_BYTES) if value is not None else FMT_NULL
        else:
            headers.append((name, data))
    return key, key_fmt, value, value_fmt, headers


def to_record(msg: Any) -> Record:
    key, key_fmt, value, value_fmt, headers = decode_message(msg)
    return Record(
        msg.topic(),
        msg.partition(),
        msg.offset(),
        msg.timestamp()[1],
        decode(key, key_fmt),
        decode(value, value_fmt),
        dict(headers),
    )


def next_batch(consumer: Any, timeout: float, limit: int, linger: float = 0.02) -> list[Any]:
    """Up to ``limit`` messages, waiting at most ``timeout`` for the first one, then taking
    what follows within ``linger`` seconds of the previous one.

    (``Consumer.consume(n, timeout)`` waits the whole timeout unless ``n`` arrive; and a
    broker may answer a fetch with one batch per partition, so a short linger collects
    the batches already stored instead of returning one per poll.)
    """
    first = consumer.poll(max(timeout, 0))
    if first is None:
        return []
    out = [first]
    while len(out) < limit:
        more = consumer.consume(limit - len(out), 0)
        if not more:
            following = consumer.poll(linger)
            if following is None:
                break
            more = [following]
        out.extend(more)
    return out


def check_message(msg: Any) -> bool:
    """True for a record; raises for an error a reader must hear about, False for noise."""
    error = msg.error()
    if error is None:
        return True
    if error.code() in _QUIET:
        return False
    if error.retriable() and error.code() != ck.KafkaError._AUTO_OFFSET_RESET:
        log.info("consumer: %s", error)
        return False
    raise translate(error, topic=msg.topic(), partition=msg.partition())


def _commit_entry(tp: TopicPartition, om: OffsetAndMetadata) -> ck.TopicPartition:
    if om.metadata:  # confluent-kafka refuses metadata=None
        return ck.TopicPartition(tp.topic, tp.partition, om.offset, om.metadata)
    return ck.TopicPartition(tp.topic, tp.partition, om.offset)


def ck_partition(tp: TopicPartition, offset: int | None = None) -> ck.TopicPartition:
    if offset is None:
        return ck.TopicPartition(tp.topic, tp.partition)
    return ck.TopicPartition(tp.topic, tp.partition, offset)


class KafkaConsumer:
    """Subscribe (or assign), poll, seek, commit: the embedded ``Consumer``'s API on Kafka."""

    def __init__(
        self,
        lab: KafkaLab,
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
    ) -> None:
        if auto_offset_reset not in ("earliest", "latest", "none"):
            raise ConfigError(f"auto_offset_reset must be 'earliest', 'latest' or 'none', got {auto_offset_reset!r}")
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
            "topic.metadata.refresh.interval.ms": 5000,  # a group sees new partitions within seconds
        }
        if group_instance_id is not None:
            settings["group.instance.id"] = group_instance_id
        extra = {**lab.client_options, **(kafka_config or {})}
        self._consumer = ck.Consumer(client_config(lab.bootstrap, extra, **settings))
        self._subscription: list[str] = []
        self._manual = False
        self._positions: dict[TopicPartition, int | None] = {}
        self._last_refresh = time.monotonic()
        self._closed = False
        lab._adopt(self)
        if topics is not None:
            try:
                self.subscribe(topics)
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"<streamlab.KafkaConsumer group={self.group!r} assigned={len(self._positions)}>"

    # assignment -------------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str] | str) -> None:
        self._check_open()
        names = [topics] if isinstance(topics, str) else list(topics)
        for topic in names:
            self._lab._topic_info(topic)  # UnknownTopicError, as on the embedded broker
        self._subscription, self._manual = names, False
        if self.group is not None:
            self._consumer.subscribe(names, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)
        else:
            wanted = [TopicPartition(t, p) for t in names for p in range(self._lab._topic_info(t).partitions)]
            self._set_manual(wanted)

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
        missing = [tp for tp in added if tp not in start]
        if missing and self._reset != "none":
            marks = self._lab._watermarks(missing)
            start.update({tp: marks[tp][0 if self._reset == "earliest" else 1] for tp in missing})
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
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first."""
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

    # positions --------------------------------------------------------------------------
    def position(self, tp: TopicPartition) -> int:
        position = self._positions[self._assigned_tp(tp)]
        if position is None:
            raise self._no_position(tp)
        return position

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidOffsetError(f"offset must be a non-negative integer, got {offset!r}")
        self._seek({self._assigned_tp(tp): offset})

    def _seek(self, targets: dict[TopicPartition, int]) -> None:
        for tp, offset in targets.items():
            self._positions[tp] = offset
            try:
                self._consumer.seek(ck_partition(tp, offset))
            except ck.KafkaException:  # not fetching yet: assigning again with the offset does it
                self._consumer.incremental_unassign([ck_partition(tp)])
                self._consumer.incremental_assign([ck_partition(tp, offset)])

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        targets = self._targets(partitions)
        self._seek({tp: low for tp, (low, _) in self._lab._watermarks(targets).items()})

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        targets = self._targets(partitions)
        self._seek({tp: high for tp, (_, high) in self._lab._watermarks(targets).items()})

    def seek_to_timestamp(self, timestamp: Any, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Move to the first record at or after ``timestamp`` (datetime, ISO string or ms)."""
        ms = to_ms(timestamp)
        self._seek(self._lab._offsets_for_time(self._targets(partitions), ms))

    def _targets(self, partitions: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        self._check_open()
        return list(self._positions) if partitions is None else [self._assigned_tp(tp) for tp in partitions]

    def _assigned_tp(self, tp: TopicPartition) -> TopicPartition:
        self._check_open()
        if tp not in self._positions:
            raise StreamlabError(
                f"{tp} is not assigned to this consumer (assigned: {sorted(self._positions)})",
                topic=tp.topic,
                partition=tp.partition,
            )
        return tp

    @staticmethod
    def _no_position(tp: TopicPartition) -> OffsetOutOfRangeError:
        return OffsetOutOfRangeError(
            f"no valid position for {tp} and auto_offset_reset='none'; seek() to a position first",
            topic=tp.topic,
            partition=tp.partition,
        )

    # committing -------------------------------------------------------------------------
    def commit(
        self,
        offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None,
        *,
        asynchronous: bool = False,
    ) -> None:
        """Commit ``offsets`` (default: the current positions) for this consumer's group."""
        self._check_open()
        if self.group is None:
            raise NoGroupError("committing needs a consumer group: pass group='...' when creating the consumer")
        if offsets is None:
            chosen = {tp: OffsetAndMetadata(pos) for tp, pos in self._positions.items() if pos is not None}
        else:
            chosen = {
                tp: om if isinstance(om, OffsetAndMetadata) else OffsetAndMetadata(self._valid_offset(om))
                for tp, om in offsets.items()
            }
        self._commit(chosen, asynchronous=asynchronous)

    def _commit(self, chosen: dict[TopicPartition, OffsetAndMetadata], *, asynchronous: bool) -> None:
        if not chosen:
            return
        listed = [_commit_entry(tp, om) for tp, om in sorted(chosen.items())]
        try:
            if asynchronous:
                self._consumer.commit(offsets=listed, asynchronous=True)
                return
            results = self._consumer.commit(offsets=listed, asynchronous=False)
        except ck.KafkaException as exc:
            raise translate(exc, context=f"committing offsets for group {self.group!r}") from exc
        for result in results or ():
            if result.error is not None:
                raise translate(result.error, topic=result.topic, partition=result.partition)

    def _commit_positions(self, partitions: Iterable[TopicPartition]) -> None:
        chosen = {tp: OffsetAndMetadata(pos) for tp in partitions if (pos := self._positions.get(tp)) is not None}
        self._commit(chosen, asynchronous=False)

    @staticmethod
    def _valid_offset(offset: object) -> int:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidOffsetError(f"offset must be a non-negative integer, got {offset!r}")
        return offset

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        self._check_open()
        if self.group is None:
            raise NoGroupError("committed offsets belong to a group: pass group='...' when creating the consumer")
        wanted = list(partitions)
        try:
            stored = self._consumer.committed([ck_partition(tp) for tp in wanted], timeout=self._lab.timeout)
        except ck.KafkaException as exc:
            raise translate(exc, context=f"reading the committed offsets of group {self.group!r}") from exc
        found = {TopicPartition(c.topic, c.partition): c.offset for c in stored}
        return {tp: (found[tp] if found.get(tp, -1) >= 0 else None) for tp in wanted}

    def _maybe_auto_commit(self) -> None:
        if self._auto_commit and time.monotonic() - self._last_auto_commit >= self._auto_commit_interval:
            self._last_auto_commit = time.monotonic()
            chosen = {tp: OffsetAndMetadata(pos) for tp, pos in self._positions.items() if pos is not None}
            self._commit(chosen, asynchronous=True)

    # lifecycle --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this consumer is closed; create a new one with lab.consumer()")
        self._lab._check_open()

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
