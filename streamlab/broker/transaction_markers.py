"""Transaction markers as stored rows, and what each reader sees around them.

A marker is a control record stored as a row whose ``key_format`` and ``value_format``
are :data:`~streamlab.model.serde.FMT_CONTROL`: its key Kafka's control key (version,
type), its value the control value (version, coordinator epoch), and a header naming the
producer. Readers never see markers; read-committed readers also skip the records of
aborted transactions and stop at the last stable offset (:mod:`.transaction_state`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final, Protocol

import numpy as np
import pyarrow as pa

from streamlab.broker.transaction_state import Range, TransactionIndex
from streamlab.model.schema import build_batch
from streamlab.model.serde import FMT_CONTROL
from streamlab.storage.base import PartitionLog

CONTROL_ABORT: Final = 0
CONTROL_COMMIT: Final = 1
PRODUCER_HEADER: Final = "streamlab.txn.producer"  # "<producer id>:<epoch>" on a marker row
CONTROL_KEY = struct.Struct(">hh")  # version 0, type
CONTROL_VALUE = struct.Struct(">hi")  # version 0, coordinator epoch


class IndexView(Protocol):
    """What a reader asks of the transaction index: a :class:`TransactionIndex`, or the
    coordinator's live one (read under its lock)."""

    def last_stable_offset(self, topic: str, partition: int, high_watermark: int) -> int: ...

    def aborted_in(self, topic: str, partition: int, start: int, end: int) -> list[Range]: ...


def marker_batch(producer_id: int, epoch: int, kind: int, now_ms: int) -> pa.RecordBatch:
    """The row of one marker (``kind``: :data:`CONTROL_COMMIT` or :data:`CONTROL_ABORT`)
    that ends ``producer_id``'s transaction in a partition."""
    return build_batch(
        base_offset=0,
        timestamps=[now_ms],
        keys=[CONTROL_KEY.pack(0, kind)],
        key_formats=[FMT_CONTROL],
        values=[CONTROL_VALUE.pack(0, 0)],
        value_formats=[FMT_CONTROL],
        headers=[[(PRODUCER_HEADER, f"{producer_id}:{epoch}".encode())]],
    )


def visible_filter_sql(aborted: Sequence[Range] = (), *, stable_offset: int | None = None) -> str:
    """A SQL predicate over stored rows (columns ``offset``, ``key_format``) keeping what a
    reader should see: never markers; with ``aborted`` ranges (read-committed), not the
    records of aborted transactions; with ``stable_offset``, nothing from there on.

    Apply it per partition (the ranges are one partition's), e.g. in a ``WHERE`` clause.
    """
    terms = [f"key_format <> {FMT_CONTROL}"]
    terms.extend(f'NOT ("offset" >= {start} AND "offset" < {end})' for start, end in aborted)
    if stable_offset is not None:
        terms.append(f'"offset" < {stable_offset}')
    return " AND ".join(terms)


def visible_mask(table: pa.Table | pa.RecordBatch, aborted: Sequence[Range] = ()) -> np.ndarray:
    """A boolean mask of the rows a reader should see (see :func:`visible_filter_sql`)."""
    keep = np.asarray(table.column("key_format").to_numpy(zero_copy_only=False) != FMT_CONTROL)
    if aborted and table.num_rows:
        keep &= ~aborted_rows(np.asarray(table.column("offset").to_numpy(zero_copy_only=False)), aborted)
    return keep


def aborted_rows(offsets: np.ndarray, aborted: Sequence[Range]) -> np.ndarray:
    """Which ``offsets`` fall in one of the sorted, disjoint ``aborted`` ranges."""
    if not aborted:
        return np.zeros(len(offsets), dtype=bool)
    starts = np.fromiter((r[0] for r in aborted), dtype=np.int64, count=len(aborted))
    ends = np.fromiter((r[1] for r in aborted), dtype=np.int64, count=len(aborted))
    i = np.searchsorted(starts, offsets, side="right") - 1
    return np.asarray((i >= 0) & (offsets < ends[np.clip(i, 0, None)]))


def is_control(table: pa.Table | pa.RecordBatch) -> np.ndarray:
    return np.asarray(table.column("key_format").to_numpy(zero_copy_only=False) == FMT_CONTROL)


def control_record(row_key: bytes | None) -> int | None:
    """The marker type (:data:`CONTROL_ABORT` / :data:`CONTROL_COMMIT`) of a stored control key."""
    if row_key is None or len(row_key) < CONTROL_KEY.size:
        return None
    return int(CONTROL_KEY.unpack_from(row_key)[1])


def marker_producer(headers: list[dict[str, Any]] | None) -> tuple[int, int]:
    """(producer id, epoch) from a marker row's headers; (-1, -1) if absent."""
    for h in headers or ():
        if h["key"] == PRODUCER_HEADER and h["value"]:
            pid, _, epoch = h["value"].decode().partition(":")
            return int(pid), int(epoch)
    return -1, -1


def read_visible(
    log: PartitionLog, index: IndexView, topic: str, partition: int, offset: int, max_records: int, *,
    committed: bool,
) -> tuple[pa.Table, int]:  # fmt: skip
    """What a consumer at ``offset`` gets: up to ``max_records`` stored rows without markers
    (and, ``committed``, without aborted records and nothing from the last stable offset
    on), and the offset to read from next, past every row looked at. The rows may be
    fewer than asked for, or none while the next offset still moves."""
    end = index.last_stable_offset(topic, partition, log.high_watermark) if committed else log.high_watermark
    if offset >= end:
        return log.read(offset, 0), offset
    table = log.read(offset, max_records)
    offsets = np.asarray(table.column("offset").to_numpy())
    keep = offsets < end
    next_offset = int(offsets[keep][-1]) + 1 if keep.any() else offset
    aborted = index.aborted_in(topic, partition, offset, next_offset) if committed else []
    keep &= visible_mask(table, aborted)
    return (table if keep.all() else table.filter(pa.array(keep))), next_offset


def stable_visible(table: pa.Table, aborted: Sequence[Range], stable_offset: int) -> pa.Table:
    """The rows of ``table`` below ``stable_offset`` that are not in ``aborted`` ranges
    (markers kept: the Kafka server encodes them as control batches)."""
    offsets = np.asarray(table.column("offset").to_numpy())
    keep = offsets < stable_offset
    if aborted:
        keep &= ~aborted_rows(offsets, aborted)
    if keep.all():
        return table
    return table.filter(pa.array(keep))


def transaction_rows(
    log: PartitionLog, index: TransactionIndex, topic: str, partition: int, start: int, end: int
) -> pa.Table:
    """What a read_committed reader of [start, end) does not get, one row per offset:
    records of aborted transactions (``transaction`` "aborted") and of transactions still
    open ("open", with their producer id), and the markers ("marker", ``marker`` "COMMIT"
    or "ABORT", the producer id and epoch that wrote them). Every other offset is a record
    read_committed readers get. Columns: offset, timestamp, transaction, marker,
    producer_id, producer_epoch."""
    offsets: list[int] = []
    stamps: list[Any] = []
    status: list[str] = []
    markers: list[str | None] = []
    pids: list[int | None] = []
    epochs: list[int | None] = []
    aborted = index.aborted_in(topic, partition, start, end)
    open_ranges = [(rng, pid) for pid, ranges in index.open.get((topic, partition), {}).items() for rng in ranges]
    at = start
    while at < end:
        table = log.read(at, min(end - at, 10_000))
        if not table.num_rows:
            break
        at_offsets = np.asarray(table.column("offset").to_numpy())
        table = table.filter(pa.array(at_offsets < end))
        at = int(at_offsets[-1]) + 1
        row_offsets = np.asarray(table.column("offset").to_numpy())
        in_open = np.zeros(len(row_offsets), dtype=bool)
        for (lo, hi), _ in open_ranges:
            in_open |= (row_offsets >= lo) & (row_offsets < hi)
        control, in_aborted = is_control(table), aborted_rows(row_offsets, aborted)
        shown = control | in_aborted | in_open  # only these leave Python rows: the rest are committed
        table, control, in_aborted = table.filter(pa.array(shown)), control[shown], in_aborted[shown]
        for i, row in enumerate(table.select(["offset", "timestamp", "key", "headers"]).to_pylist()):
            offset = row["offset"]
            if control[i]:
                kind = control_record(row["key"])
                pid, epoch = marker_producer(row["headers"])
                entry: tuple[str, str | None, int | None, int | None] = (
                    "marker", "COMMIT" if kind == CONTROL_COMMIT else "ABORT", pid, epoch)  # fmt: skip
            elif in_aborted[i]:
                entry = ("aborted", None, None, None)
            else:
                owner = next((pid for (lo, hi), pid in open_ranges if lo <= offset < hi), None)
                if owner is None:
                    continue
                entry = ("open", None, owner, None)
            offsets.append(offset)
            stamps.append(row["timestamp"])
            status.append(entry[0])
            markers.append(entry[1])
            pids.append(entry[2])
            epochs.append(entry[3])
    return pa.table(
        {
            "offset": pa.array(offsets, pa.int64()),
            "timestamp": pa.array(stamps, pa.timestamp("ms", tz="UTC")),
            "transaction": pa.array(status, pa.string()),
            "marker": pa.array(markers, pa.string()),
            "producer_id": pa.array(pids, pa.int64()),
            "producer_epoch": pa.array(epochs, pa.int32()),
        }
    )
