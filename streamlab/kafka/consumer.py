"""``KafkaConsumer``: the embedded Consumer's API over a confluent-kafka consumer.

Like the embedded consumer it keeps its own *positions* (the next offset to read, per
assigned partition) and resolves them the moment a partition is assigned: from the
group's committed offset, else from ``auto_offset_reset`` against the partition's log
start or high watermark. So ``position()`` answers before the first record arrives, a
``"latest"`` consumer sees every record produced after it was assigned, and commits
(explicit, every ``auto_commit_interval_ms`` in ``poll``, on revocation and on close)
commit those positions, as on the embedded broker. That bookkeeping is shared with the
embedded consumer (:mod:`streamlab.port.consumer_base`); this module supplies the
cluster's side: librdkafka's settings, group callbacks, seeks and commits.

What differs (see also :mod:`streamlab.kafka.backend`):

- A group's partitions arrive through the group protocol, during ``poll()``; until the
  first poll after subscribing, ``assignment()`` may be empty (the embedded broker
  assigns inside ``subscribe``).
- librdkafka has range, roundrobin and cooperative-sticky but no eager ``sticky``
  assignor, and cannot mix eager and cooperative assignors in one list: the list is cut
  to the assignors sharing the first one's protocol.
- ``generation`` is -1: librdkafka does not expose the group generation.

Reading messages (decoding, batches, errors) is shared with the other readers in
:mod:`.messages`.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck

from streamlab.errors import ConfigError, StreamlabError
from streamlab.kafka import client_config, log, translate
from streamlab.kafka.messages import check_message, ck_partition, commit_entry, next_batch, to_record
from streamlab.model.types import OffsetAndMetadata, Record, TopicPartition
from streamlab.port.consumer_base import ConsumerBase, ConsumerConfig, LogBounds, no_position
from streamlab.port.record_decode import RecordDecoder

if TYPE_CHECKING:
    from streamlab.kafka.backend import KafkaBackend

_ASSIGNORS = {"range": "eager", "roundrobin": "eager", "cooperative-sticky": "cooperative"}
# What a KIP-848 broker assigns with (group.remote.assignor).
_REMOTE_ASSIGNORS = ("uniform", "range")
# How long close() serves the revocation after unsubscribing, then waits for librdkafka's
# own close (which leaves the group) before giving up on it.
_LEAVE_WAIT_S = 10.0
_CLOSE_WAIT_S = 30.0


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


class KafkaConsumer(ConsumerBase):
    """Subscribe (or assign), poll, seek, commit: the embedded ``Consumer``'s API on Kafka."""

    def __init__(
        self,
        lab: KafkaBackend,
        topics: Iterable[str] | str | None = None,
        *,
        config: ConsumerConfig | None = None,
        pattern: str | None = None,
        decoder: RecordDecoder | None = None,
        heartbeat_interval_ms: int | None = None,
        kafka_config: dict[str, Any] | None = None,
    ) -> None:
        config = config or ConsumerConfig()
        if config.group_protocol == "consumer":
            remote = config.remote_assignor(_REMOTE_ASSIGNORS)
            strategy, self._cooperative = "", True  # KIP-848 reconciles incrementally
        else:
            strategy, self._cooperative = assignment_strategy(config.assignor)
        lab._check_open()
        super().__init__(config, decoder)
        self._lab = lab
        session_timeout_ms = config.session_timeout_ms
        heartbeat = heartbeat_interval_ms or max(100, min(3000, session_timeout_ms // 3))
        settings: dict[str, Any] = {
            # Without a group the consumer only ever assigns, so this id never joins anything.
            "group.id": config.group or f"streamlab-nogroup-{uuid.uuid4().hex}",
            "client.id": config.client_id,
            "auto.offset.reset": {"none": "error"}.get(config.auto_offset_reset, config.auto_offset_reset),
            "enable.auto.commit": False,  # streamlab commits its own positions (see the module doc)
            "enable.auto.offset.store": False,
            "partition.assignment.strategy": strategy,
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": heartbeat,
            "max.poll.interval.ms": max(config.max_poll_interval_ms, session_timeout_ms),
            "fetch.wait.max.ms": 100,
            # Set always: librdkafka's default is read_committed, Kafka's (and the embedded one's) is not.
            "isolation.level": config.isolation_level,
            "topic.metadata.refresh.interval.ms": 5000,  # a group sees new partitions within seconds
        }
        if config.group_instance_id is not None:
            settings["group.instance.id"] = config.group_instance_id
        if config.group_protocol == "consumer":
            # The broker assigns and times sessions: librdkafka refuses these with group.protocol=consumer.
            for name in ("partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms"):
                del settings[name]
            settings["group.protocol"] = "consumer"
            settings["max.poll.interval.ms"] = config.max_poll_interval_ms
            if remote is not None:
                settings["group.remote.assignor"] = remote
        extra = {**lab.client_options, **(kafka_config or {})}
        self._consumer = ck.Consumer(client_config(lab.bootstrap, extra, **settings))
        self._last_refresh = time.monotonic()
        lab._adopt(self)
        if topics is not None or pattern is not None:
            try:
                self.subscribe(None if pattern is not None else topics, pattern=pattern)  # a pattern wins
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"<streamlab.KafkaConsumer group={self.group!r} assigned={len(self._positions)}>"

    # the cluster's side of the base -----------------------------------------------------
    def _check_backend_open(self) -> None:
        self._lab._check_open()

    def _topic_names(self) -> list[str]:
        return self._lab.topic_names()

    def _check_topic(self, topic: str) -> None:
        self._lab._topic_info(topic)  # UnknownTopicError, as on the embedded broker

    def _check_partition(self, tp: TopicPartition) -> None:
        self._lab._check_partition(tp.topic, tp.partition)

    def _bounds(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, LogBounds]:
        return {tp: LogBounds(low, high, high) for tp, (low, high) in self._lab._watermarks(partitions).items()}

    def _offsets_for_time(self, partitions: Sequence[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        return self._lab._offsets_for_time(partitions, ms)

    def _stored_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        try:
            stored = self._consumer.committed([ck_partition(tp) for tp in partitions], timeout=self._lab.timeout)
        except ck.KafkaException as exc:
            raise translate(exc, context=f"reading the committed offsets of group {self.group!r}") from exc
        return {TopicPartition(c.topic, c.partition): c.offset for c in stored if c.offset >= 0}

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        self._check_open()  # librdkafka's closed handle would not say why
        return super().committed(partitions)

    def _write_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], *, asynchronous: bool) -> None:
        if not offsets:
            return
        listed = [commit_entry(tp, om) for tp, om in sorted(offsets.items())]
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

    def _move(self, targets: dict[TopicPartition, int]) -> None:
        for tp, offset in targets.items():
            self._positions[tp] = offset
            try:
                self._consumer.seek(ck_partition(tp, offset))
            except ck.KafkaException:  # not fetching yet: assigning again with the offset does it
                self._consumer.incremental_unassign([ck_partition(tp)])
                self._consumer.incremental_assign([ck_partition(tp, offset)])

    # assignment -------------------------------------------------------------------------
    def _follow(self, topics: list[str], pattern: re.Pattern[str] | None) -> None:
        # in a group, librdkafka re-checks a pattern as topics appear, as Kafka's clients do
        if self.group is not None:
            wanted_names = topics if pattern is None else [f"^({pattern.pattern})$"]  # librdkafka's regex: a leading ^
            self._consumer.subscribe(wanted_names, on_assign=self._assigned, on_revoke=self._revoked,
                                     on_lost=self._lost)  # fmt: skip
        else:
            wanted = [TopicPartition(t, p) for t in topics for p in range(self._lab._topic_info(t).partitions)]
            self._set_assignment(wanted)

    def _leave_subscription(self) -> None:
        if self.group is not None and self._subscription and not self._manual:
            self._consumer.unsubscribe()

    def _assignment_changed(self) -> None:
        self._consumer.assign([self._ck(tp) for tp in self._positions])

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
    def _read(self, limit: int, deadline: float) -> list[Record]:
        self._refresh_partitions()
        for tp, position in self._positions.items():
            if position is None:
                raise no_position(tp)
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

    def consumer_group_metadata(self) -> Any:
        """librdkafka's group metadata, for ``send_offsets_to_transaction``."""
        return self._consumer.consumer_group_metadata()

    # lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Commit the positions (with auto commit), leave the group and stop. Safe to call twice."""
        if not self._mark_closed():
            return
        try:
            if self._auto_commit and self._positions:
                self._commit_positions(list(self._positions))
        except StreamlabError as exc:
            log.warning("commit on close failed: %s", exc)
        finally:
            self._positions.clear()  # committed above: the revocation on the way out has nothing to do
            self._shut_down()
            self._lab._release(self)

    def _shut_down(self) -> None:
        """Leave the group and close librdkafka's handle, in bounded time.

        librdkafka's close can hang for good when a rebalance lands while it closes
        (librdkafka#4884, #4527). So the subscription is dropped first and its revocation
        served here, by polling until nothing is assigned, as librdkafka's maintainers
        advise; then the handle is closed on a helper thread, and a close that still
        hangs is abandoned with a warning rather than blocking the notebook cell.
        """
        if self.group is not None and self._subscription and not self._manual:
            deadline = time.monotonic() + _LEAVE_WAIT_S
            try:
                self._consumer.unsubscribe()
                while self._consumer.assignment() and time.monotonic() < deadline:
                    self._consumer.consume(num_messages=500, timeout=0.1)  # serves the revocation
            except (ck.KafkaException, RuntimeError) as exc:  # the close below still leaves the group
                log.warning("leaving group %r before closing failed: %s", self.group, exc)
        closer = threading.Thread(target=self._close_handle, name="streamlab-consumer-close", daemon=True)
        closer.start()
        closer.join(_CLOSE_WAIT_S)
        if closer.is_alive():
            log.warning("librdkafka's consumer close did not finish within %s s; abandoning it", _CLOSE_WAIT_S)

    def _close_handle(self) -> None:
        try:
            self._consumer.close()
        except (ck.KafkaException, RuntimeError) as exc:
            log.warning("closing the consumer of group %r: %s", self.group, exc)

    @property
    def member_id(self) -> str | None:
        if self.group is None or self._closed:
            return None
        member = self._consumer.memberid()
        return member or None

    @property
    def generation(self) -> int:
        return -1  # not exposed by librdkafka
