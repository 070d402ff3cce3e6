"""Fetch's view of transactions on the wire.

* ``read_uncommitted`` reads up to the high watermark; ``read_committed`` up to the last
  stable offset, and the records of aborted transactions are dropped on the server, by
  :func:`streamlab.broker.fetch.read` (the stored rows have no producer id for a client to
  filter by): the consumer gets an offset gap, as after compaction, and the response's
  aborted-transaction list is empty.
* Markers (rows with ``key_format`` FMT_CONTROL) go out as control batches (attributes
  bit 5, transactional, the producer's id and epoch), so clients step over the offsets
  they occupy and never show them as records.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from streamlab.broker.transaction_markers import is_control, marker_producer
from streamlab.protocol.batch_encoding import encode_batch
from streamlab.protocol.batch_layout import INT32, INT64, LAST_DELTA_OFFSET
from streamlab.protocol.record_batch import WireRecord

LEADER_EPOCH = 0

Encoder = Callable[[pa.Table, int, bool], bytes]  # (rows, byte limit, at least one) -> one batch


def _last_offset(batch: bytes) -> int:
    return int(INT64.unpack_from(batch, 0)[0]) + int(INT32.unpack_from(batch, LAST_DELTA_OFFSET)[0])


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
