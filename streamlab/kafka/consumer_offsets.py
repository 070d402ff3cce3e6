"""Where a :class:`~streamlab.kafka.consumer.KafkaConsumer` is and what it committed:
positions, seeking, commits (explicit, automatic) and reading committed offsets.

The consumer keeps its own positions rather than librdkafka's (see :mod:`.consumer`);
this base class holds everything that reads or moves them outside of assignment changes,
so that the consumer module keeps subscribing, rebalancing and polling in one place.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck

from streamlab.errors import ClosedError, NoGroupError, OffsetOutOfRangeError, StreamlabError
from streamlab.kafka import translate
from streamlab.kafka.messages import ck_partition, commit_entry
from streamlab.model.timeparse import to_ms
from streamlab.model.types import OffsetAndMetadata, TopicPartition, check_offset, committable

if TYPE_CHECKING:
    from streamlab.kafka.backend import KafkaBackend


class ConsumerOffsets:
    """Positions and commits; :class:`~streamlab.kafka.consumer.KafkaConsumer` sets the
    attributes below in its ``__init__``."""

    group: str | None
    _lab: KafkaBackend
    _consumer: Any  # a confluent_kafka.Consumer: the package ships no type stubs
    _positions: dict[TopicPartition, int | None]
    _closed: bool
    _auto_commit: bool
    _auto_commit_interval: float
    _last_auto_commit: float

    # positions --------------------------------------------------------------------------
    def position(self, tp: TopicPartition) -> int:
        position = self._positions[self._assigned_tp(tp)]
        if position is None:
            raise self._no_position(tp)
        return position

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._seek({self._assigned_tp(tp): check_offset(offset)})

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
            chosen = {tp: committable(tp, om) for tp, om in offsets.items()}
        self._commit(chosen, asynchronous=asynchronous)

    def _commit(self, chosen: dict[TopicPartition, OffsetAndMetadata], *, asynchronous: bool) -> None:
        if not chosen:
            return
        listed = [commit_entry(tp, om) for tp, om in sorted(chosen.items())]
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
