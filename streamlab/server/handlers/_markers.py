"""Fetch's view of transactions: what each isolation level reads, and markers on the wire.

* ``read_uncommitted`` reads up to the high watermark; ``read_committed`` up to the last
  stable offset, and the records of aborted transactions are dropped here, on the server
  (the stored rows have no producer id for a client to filter by): the consumer gets an
  offset gap, as after compaction, and the response's aborted-transaction list is empty.
* Markers (rows with ``key_format`` FMT_CONTROL) go out as control batches (attributes
  bit 5, transactional, the producer's id and epoch), so clients step over the offsets
  they occupy and never show them as records.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from streamlab.broker.transaction_markers import is_control, marker_producer, stable_visible
from streamlab.protocol.record_batch import WireRecord, encode_batch
from streamlab.server.context import ServerContext
from streamlab.storage.base import PartitionLog

_BASE_AND_DELTA = (struct.Struct(">q"), struct.Struct(">i"))
_LAST_DELTA_AT = 23
LEADER_EPOCH = 0

Encoder = Callable[[pa.Table, int, bool], bytes]  # (rows, byte limit, at least one) -> one batch


def read_rows(
    ctx: ServerContext, topic: str, partition: int, log: PartitionLog, offset: int, *,
    max_records: int, end: int, committed_only: bool,
) -> pa.Table:  # fmt: skip
    """Up to ``max_records`` rows from ``offset``; read-committed: below ``end`` (the last
    stable offset) and without aborted records. Never empty while ``offset < end``, so the
    consumer always moves: every aborted stretch ends with a marker, which is kept."""
    if not committed_only:
        return log.read(offset, max_records)
    while True:
        table = log.read(offset, max_records)
        if table.num_rows == 0:
            return table
        first, last = int(table.column("offset")[0].as_py()), int(table.column("offset")[-1].as_py())
        aborted = ctx.transactions.aborted_in(topic, partition, first, last + 1)
        visible = stable_visible(table, aborted, end)
        if visible.num_rows or last + 1 >= end:
            return visible
        offset = last + 1  # all aborted: look further


def _last_offset(batch: bytes) -> int:
    base, delta = _BASE_AND_DELTA
    return int(base.unpack_from(batch, 0)[0]) + int(delta.unpack_from(batch, _LAST_DELTA_AT)[0])


def _marker(table: pa.Table, row: int) -> bytes:
    pid, epoch = marker_producer(table.column("headers")[row].as_py())
    offset = int(table.column("offset")[row].as_py())
    timestamp = int(table.column("timestamp").cast(pa.int64())[row].as_py())
    record = WireRecord(offset, timestamp, table.column("key")[row].as_py(), table.column("value")[row].as_py())
    return encode_batch(
        [record], base_offset=offset, producer_id=pid, producer_epoch=epoch, partition_leader_epoch=LEADER_EPOCH,
        transactional=pid >= 0, control=True,
    )  # fmt: skip


def encode_with_markers(table: pa.Table, limit: int, at_least_one: bool, encode: Encoder) -> bytes:
    """The rows as batches in offset order: runs of records through ``encode``, each
    marker as a control batch; cut at ``limit`` bytes (the first batch always fits when
    ``at_least_one``)."""
    controls = np.flatnonzero(is_control(table)) if table.num_rows else np.empty(0, dtype=np.int64)
    if not len(controls):
        return encode(table, limit, at_least_one)
    offsets = table.column("offset").to_numpy()
    out: list[bytes] = []
    used, start = 0, 0
    for stop in [*controls.tolist(), table.num_rows]:
        if stop > start:
            chunk = encode(table.slice(start, stop - start), limit - used, at_least_one and not out)
            if not chunk:
                break
            out.append(chunk)
            used += len(chunk)
            if _last_offset(chunk) < int(offsets[stop - 1]):  # cut short: the limit is reached
                break
        if stop < table.num_rows:
            marker = _marker(table, stop)
            if out and used + len(marker) > limit:
                break
            out.append(marker)
            used += len(marker)
        start = stop + 1
    return b"".join(out)
