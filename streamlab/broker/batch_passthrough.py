"""Batches as producers wrote them: kept by the wire Produce, served by Fetch.

Produce keeps a batch (:func:`wire_batch`, then
:func:`streamlab.broker.produce.append_from_producer`) only when the stored rows
are exactly its records, so that serving its bytes says the same as the rows: not under
``message.timestamp.type=LogAppendTime`` or a topic ``compression.type`` other than
``producer`` or the batch's own (the broker would rewrite the batch), nor when a record
has no timestamp (the broker gives it one) or the offset deltas are not 0, 1, 2, ...

Fetch (:func:`fill`) serves a stored batch where the fetch offset falls in it, and the
stored batches after it as long as they follow on, then encodes rows up to the next
stored batch, and so on, up to the byte limit. A stored batch is served only if the log
still holds every one of its offsets (compaction or a repair removing one means its rows
are encoded), all of them at or past the log start and below where the fetch stops (the
high watermark, or the last stable offset under read_committed), none of them in an
aborted transaction under read_committed, and zstd only to Fetch v10 or later. As Kafka
does, the whole batch goes out when the fetch offset is inside it: clients skip the
records before the offset they asked for. A stored batch larger than the whole limit goes
out as rows, which can be cut to fit (Kafka would send it whole), so the server's memory
budget and ``fetch.max.bytes`` hold exactly as for rows.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from streamlab.broker.core import Broker
from streamlab.broker.transactions import TransactionCoordinator
from streamlab.errors import CorruptSegmentError
from streamlab.protocol import batch_layout as layout
from streamlab.protocol.batch_columns import ColumnBatch
from streamlab.storage.base import PartitionLog
from streamlab.storage.catalog import SegmentInfo
from streamlab.storage.wire_batches import BatchRun, StoredBatch

_ZSTD = layout.CODEC_IDS["zstd"]
_LOOKAHEAD = 64  # kept batches checked past ones that may not be served (compacted), per step


# Produce -----------------------------------------------------------------------------------
def wire_batch(data: bytes, start: int, size: int, decoded: ColumnBatch, config: dict[str, Any]) -> memoryview | None:
    """The producer's batch ``data[start:start + size]``, if serving it says exactly what
    the rows stored from it say; else None."""
    batch = decoded.batch
    topic_codec = config["compression.type"]
    if (
        config["message.timestamp.type"] == "LogAppendTime"
        or topic_codec not in ("producer", "uncompressed" if batch.compression == "none" else batch.compression)
        or batch.last_offset_delta != len(decoded) - 1
    ):
        return None
    if decoded.columns is not None:
        columns = decoded.columns
        if columns.timestamps.min() < 0 or not np.array_equal(columns.offset_deltas, np.arange(len(columns))):
            return None
    elif any(r.timestamp < 0 or r.offset != batch.base_offset + i for i, r in enumerate(batch.records)):
        return None
    return memoryview(data)[start : start + size]


# Fetch -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows encoded by Fetch for offsets ``[offset, stop)``."""

    data: bytes
    next_offset: int  # where reading goes on
    whole: bool  # False: the byte limit cut it short


Encoder = Callable[[int, int, int, bool], Chunk]  # (offset, stop, byte limit, at least one) -> rows as batches


def rows_before(table: pa.Table, stop: int) -> pa.Table:
    """The leading rows of ``table`` (sorted by offset) below ``stop``."""
    return table.slice(0, int(np.searchsorted(table.column("offset").to_numpy(), stop)))


def chunk(table: pa.Table, data: bytes, offset: int, stop: int) -> Chunk:
    """What encoding ``table`` (the rows read from ``offset``, cut at ``stop``) as ``data`` gave."""
    if not table.num_rows:
        return Chunk(b"", stop, True)  # nothing to read before stop
    if not data:
        return Chunk(b"", offset, False)
    last = last_offset(data)
    return Chunk(data, last + 1, last >= int(table.column("offset")[-1].as_py()))


def last_offset(data: bytes | memoryview) -> int:
    """The last offset of the last batch in ``data`` (complete v2 batches)."""
    pos, last = 0, -1
    while pos + layout.LAST_DELTA_OFFSET + 4 <= len(data):
        base, length = layout.OFFSET_LENGTH.unpack_from(data, pos)
        last = base + layout.INT32.unpack_from(data, pos + layout.LAST_DELTA_OFFSET)[0]
        pos += layout.LOG_OVERHEAD + length
    return last


def fill(
    broker: Broker, transactions: TransactionCoordinator, topic: str, partition: int, offset: int, *,
    end: int, limit: int, at_least_one: bool, committed_only: bool, zstd: bool, rows: Encoder,
) -> bytes | memoryview:  # fmt: skip
    """A partition's records for Fetch from ``offset`` to below ``end``, at most ``limit``
    bytes (``rows`` give at least one record when ``at_least_one``): stored batches where
    they may be served, ``rows`` encoded elsewhere. Raises what ``rows`` raises."""
    log = broker.log(topic, partition)
    store = log.wire_batches  # retention and DeleteRecords drop what the log start passed
    view = _LogView(log)
    out: list[bytes | memoryview] = []
    used, pos = 0, offset
    while pos < end and used < limit:
        stored, servable = store.at_or_after(pos), False
        for _ in range(_LOOKAHEAD):  # the next kept batch that may be served
            if stored is None or stored.last >= end:
                stored = None
                break
            if servable := _servable(view, stored, end):
                break
            stored = store.at_or_after(stored.last + 1)
        if stored is not None and servable and stored.base <= pos:
            run = store.read_run(stored, end=end, max_bytes=limit - used)
            kept = _servable_count(view, run, end, zstd, transactions if committed_only else None)
            if kept and used + run.entries[0].length > limit:
                if out:
                    break
                kept = 0  # too big for the limit alone: its rows can be cut to fit
            if kept:
                out.append(run.head(kept))
                used += len(out[-1])
                pos = run.entries[kept - 1].last + 1
                continue
            stop = stored.last + 1  # this one goes out as rows
        else:
            stop = end if stored is None else stored.base
        try:
            piece = rows(pos, stop, limit - used, at_least_one and not out)
        except CorruptSegmentError:
            if out:
                break  # serve what comes before the damage; the next fetch gets the error
            raise
        if piece.data:
            out.append(piece.data)
            used += len(piece.data)
        if not piece.whole or piece.next_offset <= pos:
            break
        pos = piece.next_offset
    return out[0] if len(out) == 1 else b"".join(out)  # a lone run of kept batches goes out uncopied


class _LogView:
    """The sealed segments of one instant, found by offset, and where the active ones start."""

    def __init__(self, log: PartitionLog) -> None:
        self.log = log
        self.segments = log.sealed_segments()
        self.bases = [s.base_offset for s in self.segments]
        self._active_first: int | None = None

    def overlapping(self, start: int, stop: int) -> list[SegmentInfo]:
        first = max(bisect.bisect_right(self.bases, start) - 1, 0)
        last = bisect.bisect_left(self.bases, stop)
        return [s for s in self.segments[first:last] if s.last_offset >= start]

    def active_first(self) -> int:
        """The first offset past the sealed segments that holds a record (the active
        segment's records are dense from there to the high watermark)."""
        if self._active_first is None:
            after = self.segments[-1].last_offset + 1 if self.segments else self.log.log_start_offset
            self._active_first = max(after, self.log.active_start)
        return self._active_first


def _servable_count(
    view: _LogView, run: BatchRun, end: int, zstd: bool, transactions: TransactionCoordinator | None
) -> int:
    """How many leading batches of ``run`` may be served (its first is servable by
    :func:`_servable`), checked as one range, batch by batch only where that fails: none
    zstd unless ``zstd``, none in an aborted transaction given ``transactions`` (read_committed)."""
    if not run:
        return 0
    first, last = run.entries[0], run.entries[-1]
    whole = len(run) == 1 or _servable(view, StoredBatch(first.base, last.last, sum(e.count for e in run.entries),
                                                         first.path, 0, 0), end)  # fmt: skip
    topic, partition = view.log.topic, view.log.partition
    aborted = transactions is not None and bool(transactions.aborted_in(topic, partition, first.base, last.last + 1))
    kept = 0
    for entry, data in run:
        if not zstd and data[layout.ATTRIBUTES_OFFSET + 1] & layout.CODEC_MASK == _ZSTD:
            break
        if not whole and not _servable(view, entry, end):
            break
        if (
            aborted
            and transactions is not None
            and transactions.aborted_in(topic, partition, entry.base, entry.last + 1)
        ):
            break
        kept += 1
    return kept


def _servable(view: _LogView, stored: StoredBatch, end: int) -> bool:
    """Whether the log holds every offset of ``stored``, undamaged, in ``[log start, end)``."""
    log, base, stop = view.log, stored.base, stored.last + 1
    if base < log.log_start_offset or stop > end or any(d.start < stop and base < d.end for d in log.damage):
        return False
    try:
        return _count(view, base, stop) == stored.count
    except CorruptSegmentError:
        return False


def _count(view: _LogView, start: int, stop: int) -> int:
    """How many records the log holds at offsets ``[start, stop)``: from the segment index
    (and the stored rows of a compacted segment), the active batches being dense."""
    held, sealed_end = 0, start
    for seg in view.overlapping(start, stop):
        low, high = max(start, seg.base_offset), min(stop, seg.last_offset + 1)
        if seg.records == seg.last_offset - seg.base_offset + 1:
            held += high - low
        else:  # compacted: offsets are missing somewhere in it
            offsets = view.log.read(low, high - low).column("offset").to_numpy()
            held += int(np.count_nonzero(offsets < high))
        sealed_end = max(sealed_end, high)
    if sealed_end < stop:  # no sealed segment holds the rest: the active ones may
        held += max(stop - max(sealed_end, view.active_first()), 0)
    return held
