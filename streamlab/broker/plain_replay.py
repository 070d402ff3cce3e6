"""Replay without SQL for the common case: every value a JSON object spread into typed fields.

A notebook's topic is mostly what ``send_many`` or ``send(dict)`` wrote: text keys (or
none), JSON-object values, no transactions. Its replay is then a plain projection (the
partition, offset, timestamp, the key as text, each field), which pyarrow reads from the
Parquet segments and the active segment's batches faster than DuckDB converts the same
rows (DuckDB's strings are copied in and out). :func:`plain_replay` builds exactly the
table :func:`streamlab.broker.query.replay` would (same columns, names, types and order;
``tests/test_fresh_data.py`` compares them) and returns None whenever the topic is not
such a case (other formats, values that are not objects, fields of other types or that
differ between segments, aborted or open transactions, damage), and the SQL path runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamlab.broker.core import Broker
from streamlab.model.fields import expand_json_objects
from streamlab.model.serde import FMT_CONTROL, FMT_JSON, FMT_NULL, FMT_STR
from streamlab.model.views import FIELDS_COLUMN, META_COLUMNS, Bounds

if TYPE_CHECKING:
    from streamlab.broker.query import Snapshots  # which calls this module

_READ = ["offset", "timestamp", "key", "key_format", "value_format", FIELDS_COLUMN]
_TIME = pa.timestamp("us", tz="Etc/UTC")  # what DuckDB gives for timestamps with a zone
# Field types read as they are (text as DuckDB's large strings, times as _TIME); others
# (nested, lists, the null type) go through SQL.
_PLAIN = (pa.int64(), pa.float64(), pa.bool_(), pa.string(), pa.large_string(), pa.timestamp("us", "UTC"))
_OUT = {pa.string(): pa.large_string(), pa.timestamp("us", "UTC"): _TIME}


def plain_replay(broker: Broker, topic: str, bounds: Bounds, snapshots: Snapshots) -> pa.Table | None:
    """``query.replay(broker, topic, bounds)`` (not raw, no headers) read with pyarrow, or
    None when the topic needs the SQL path."""
    state = broker.topic(topic)
    wanted = range(state.partitions) if bounds.partitions is None else bounds.partitions
    pieces: list[pa.Table] = []
    for p in sorted(wanted):  # rows by partition, then offset
        piece = _partition(broker, topic, p, bounds, snapshots)
        if piece is None:
            return None
        if piece.num_rows:
            pieces.append(piece)
    if not pieces or any(piece.schema != pieces[0].schema for piece in pieces):
        return None  # an empty replay, or fields that differ: SQL knows the shapes
    return _project(pa.concat_tables(pieces))


def _partition(broker: Broker, topic: str, p: int, bounds: Bounds, snapshots: Snapshots) -> pa.Table | None:
    snap = snapshots.of(topic, p)
    start = max(snap.log_start, bounds.start_offset or 0)
    end = bounds.end_offset if bounds.end_offset is not None else 2**63 - 1
    if snap.damage_in(start, end) is not None:
        return None  # the SQL path raises the error that names it
    transactions = snapshots.transactions
    if transactions.aborted_in(topic, p, start, end) or transactions.last_stable_offset(topic, p, 2**63 - 1) < end:
        return None
    log = broker.log(topic, p)
    tables: list[pa.Table] = []
    for seg, path in zip(snap.segments, snap.paths, strict=True):
        if seg.last_offset < snap.log_start or not bounds.keeps_segment(
            seg.base_offset, seg.last_offset, seg.min_timestamp, seg.max_timestamp
        ):
            continue
        log.verify_once(seg)  # first: a damaged file raises CorruptSegmentError naming it
        try:
            if FIELDS_COLUMN not in pq.read_schema(path).names:
                return None
            tables.append(pq.read_table(path, columns=_READ))
        except (pa.ArrowException, OSError):
            return None  # the SQL path reports it
    active = snap.active
    if active.num_rows:
        fields = snap.active_fields if snap.active_fields is not None else expand_json_objects(active)
        if fields is None:
            return None
        tables.append(active.append_column(FIELDS_COLUMN, fields).select(_READ))
    if not tables or any(t.schema != tables[0].schema for t in tables):
        return None if tables else pa.table({})
    table = pa.concat_tables(tables)
    kept = _kept(table, snap.log_start, bounds)
    if not pc.all(kept).as_py():  # a filter copies every column: only when rows go
        table = table.filter(kept)
    if not _plain(table):
        return None
    return table.add_column(0, "partition", pa.array(np.full(table.num_rows, p, dtype=np.int32)))


def _kept(table: pa.Table, log_start: int, bounds: Bounds) -> pa.ChunkedArray:
    offsets = table.column("offset")
    keep = pc.and_(pc.greater_equal(offsets, log_start), pc.not_equal(table.column("key_format"), FMT_CONTROL))
    if bounds.start_offset is not None:
        keep = pc.and_(keep, pc.greater_equal(offsets, bounds.start_offset))
    if bounds.end_offset is not None:
        keep = pc.and_(keep, pc.less(offsets, bounds.end_offset))
    ms = table.column("timestamp").cast(pa.int64())
    if bounds.start_ms is not None:
        keep = pc.and_(keep, pc.greater_equal(ms, bounds.start_ms))
    if bounds.end_ms is not None:
        keep = pc.and_(keep, pc.less(ms, bounds.end_ms))
    return keep


def _plain(table: pa.Table) -> bool:
    """Whether every value is a JSON object spread into plain fields and every key text."""
    fields = table.column(FIELDS_COLUMN)
    if not pa.types.is_struct(fields.type) or fields.null_count or not fields.type.num_fields:
        return False
    if any(fields.type.field(i).type not in _PLAIN for i in range(fields.type.num_fields)):
        return False
    formats = pc.unique(table.column("value_format")).to_pylist()
    keys = set(pc.unique(table.column("key_format")).to_pylist()) - {FMT_NULL}
    return set(formats) <= {FMT_JSON} and keys <= {FMT_STR}


def _project(table: pa.Table) -> pa.Table:
    """The columns the SQL view gives: partition, offset, timestamp, key (text), a column
    per field (``value.<name>`` for a field named like a record column)."""
    fields = table.column(FIELDS_COLUMN)
    children = fields.flatten()  # chunk by chunk: no copy of the text
    names = ["partition", "offset", "timestamp", "key"]
    columns = [
        table.column("partition"),
        table.column("offset"),
        table.column("timestamp").cast(_TIME),
        table.column("key").cast(pa.large_string()),  # checks the text is UTF-8, as decode() does
    ]
    for i in range(fields.type.num_fields):
        name, child = fields.type.field(i).name, children[i]
        names.append(f"value.{name}" if name in META_COLUMNS else name)
        columns.append(child.cast(_OUT.get(child.type, child.type)))
    return pa.table(columns, names=names)
