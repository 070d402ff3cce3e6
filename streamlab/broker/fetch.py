"""Reading records from a partition: for the embedded consumer (:func:`fetch`, and
:func:`fetch_committed` for ``read_committed``) and for the wire Fetch (:func:`bounds`,
:func:`read`), which answers markers and isolation levels."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker
from streamlab.broker.transaction_markers import read_visible, stable_visible
from streamlab.broker.transactions import TransactionCoordinator
from streamlab.errors import OffsetOutOfRangeError
from streamlab.model.serde import FMT_CONTROL
from streamlab.storage.base import PartitionLog


def _retained(broker: Broker, topic: str, partition: int, offset: int) -> tuple[PartitionLog, int]:
    """The partition's log and high watermark; raises if ``offset`` lies outside the retained log."""
    log = broker.log(topic, partition)
    start, end = log.log_start_offset, log.high_watermark
    if offset < start or offset > end:
        raise OffsetOutOfRangeError(
            f"offset {offset} is outside {topic}[{partition}]'s retained range {start}..{end}",
            topic=topic,
            partition=partition,
            offset=offset,
        )
    return log, end


def fetch(broker: Broker, topic: str, partition: int, offset: int, max_records: int) -> tuple[pa.Table, int]:
    """Records from ``offset`` on, and the offset to read from next; raises if ``offset``
    lies outside the retained log. Transaction markers (written by `streamlab serve`'s
    transaction coordinator) take offsets but are never records: they are left out, and
    the next offset is past them."""
    log, end = _retained(broker, topic, partition, offset)
    if offset == end:
        return log.read(offset, 0), offset
    table = log.read(offset, max_records)
    if not table.num_rows:
        return table, offset
    next_offset = int(table.column("offset")[-1].as_py()) + 1
    markers = pc.equal(table.column("key_format"), FMT_CONTROL)
    if pc.any(markers).as_py():
        table = table.filter(pc.invert(markers))
    return table, next_offset


def fetch_committed(
    broker: Broker, transactions: TransactionCoordinator, topic: str, partition: int, offset: int, max_records: int
) -> tuple[pa.Table, int]:
    """What a ``read_committed`` consumer at ``offset`` gets (as Fetch answers it over the
    wire): up to ``max_records`` records below the last stable offset, none of an aborted
    transaction, no markers; and the offset to read from next. Stretches of aborted
    records are stepped over here, so the rows are empty only at the last stable offset.
    Raises :class:`OffsetOutOfRangeError` for an offset outside the retained log."""
    log, _ = _retained(broker, topic, partition, offset)
    while True:
        table, next_offset = read_visible(log, transactions, topic, partition, offset, max_records, committed=True)
        if table.num_rows or next_offset == offset:
            return table, next_offset
        offset = next_offset  # only aborted records and markers: look further


@dataclass(frozen=True, slots=True)
class Bounds:
    """A partition's offsets as a fetch sees them."""

    log_start: int
    high_watermark: int
    last_stable: int  # the first offset of the oldest open transaction; else the high watermark
    log_append_time: bool  # the topic's message.timestamp.type is LogAppendTime

    def end(self, committed_only: bool) -> int:
        """Where reading stops: read_committed stops at the last stable offset."""
        return self.last_stable if committed_only else self.high_watermark


def bounds(broker: Broker, transactions: TransactionCoordinator, topic: str, partition: int) -> Bounds | None:
    """The partition's bounds, or None if there is no such topic or partition (cheap: no
    I/O, so a long-polling fetch asks again after every append)."""
    state = broker.topics.get(topic)
    if state is None or not 0 <= partition < state.partitions:
        return None
    log = state.logs[partition]
    start, high = log.log_start_offset, log.high_watermark
    last_stable = transactions.last_stable_offset(topic, partition, high)
    return Bounds(start, high, last_stable, state.config["message.timestamp.type"] == "LogAppendTime")


def read(
    broker: Broker, transactions: TransactionCoordinator, topic: str, partition: int, offset: int, *,
    max_records: int, end: int, committed_only: bool,
) -> pa.Table:  # fmt: skip
    """Up to ``max_records`` stored rows from ``offset``, markers included (the wire sends
    them as control batches). Read-committed: below ``end`` (the last stable offset) and
    without aborted records. Never empty while ``offset < end``, so the consumer always
    moves: every aborted stretch ends with a marker, which is kept. Raises
    :class:`~streamlab.errors.CorruptSegmentError` where the log is damaged."""
    log = broker.log(topic, partition)
    if not committed_only:
        return log.read(offset, max_records)
    while True:
        table = log.read(offset, max_records)
        if table.num_rows == 0:
            return table
        first, last = int(table.column("offset")[0].as_py()), int(table.column("offset")[-1].as_py())
        aborted = transactions.aborted_in(topic, partition, first, last + 1)
        visible = stable_visible(table, aborted, end)
        if visible.num_rows or last + 1 >= end:
            return visible
        offset = last + 1  # all aborted: look further
