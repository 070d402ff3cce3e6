"""Replay and SQL: every topic is a DuckDB table over its Parquet segments and active data.

A topic's *source* is the union (by column name) of its sealed Parquet files, read with
row-group pruning on offset and timestamp, and of its active segments, registered as Arrow
tables. On top of it the *view* decodes keys and values and spreads JSON-object values
into one column per top-level field, so ``SELECT key, sum(amount) FROM orders`` works.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker
from streamlab.broker.plain_replay import plain_replay
from streamlab.broker.transaction_markers import visible_filter_sql
from streamlab.broker.transaction_registry import current_index
from streamlab.broker.transaction_state import TransactionIndex
from streamlab.model.fields import expand_json_objects
from streamlab.model.schema import RECORD_SCHEMA
from streamlab.model.scratch_sql import scratch_cursor
from streamlab.model.views import FIELDS_COLUMN, Bounds, literal, quote, view_sql
from streamlab.storage.base import LogSnapshot

__all__ = ["Snapshots", "estimate_rows", "replay", "sql"]
_ids = itertools.count()
PROGRESS_CHUNK = 256 * 1024  # rows per chunk when a progress bar follows a replay


class Snapshots:
    """The partition snapshots one query reads (see ``LogSnapshot``): taken once, so a roll,
    retention or compaction during the query changes nothing it sees, and released when the
    query is done, which is when files dropped meanwhile are removed."""

    def __init__(self, broker: Broker, *, committed: bool = True) -> None:
        self._broker = broker
        self._taken: dict[tuple[str, int], LogSnapshot] = {}
        # Transactions run on this directory (embedded or served): committed data only, as a
        # read_committed consumer reads it; else everything but the markers.
        self.transactions = current_index(broker) if committed else TransactionIndex()

    def of(self, topic: str, partition: int) -> LogSnapshot:
        key = (topic, partition)
        if key not in self._taken:
            self._taken[key] = self._broker.log(topic, partition).snapshot()
        return self._taken[key]

    def release(self) -> None:
        for snap in self._taken.values():
            snap.release()
        self._taken.clear()

    def __enter__(self) -> Snapshots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def source_sql(broker: Broker, con: duckdb.DuckDBPyConnection, topic: str, bounds: Bounds, snapshots: Snapshots) -> str:
    """SQL for the raw stored rows of ``topic`` within ``bounds``.

    Every segment file it names was checked against its checksum (once per process), and
    bounds that reach damaged offsets raise :class:`CorruptSegmentError`: a query never
    returns a silent gap or altered rows."""
    state = broker.topic(topic)
    parts: list[str] = []
    wanted = range(state.partitions) if bounds.partitions is None else bounds.partitions
    for p in wanted:
        log = broker.log(topic, p)
        snap = snapshots.of(topic, p)
        start = max(snap.log_start, bounds.start_offset or 0)
        end = bounds.end_offset if bounds.end_offset is not None else 2**63 - 1
        damage = snap.damage_in(start, end)
        if damage is not None:
            raise damage.error(topic, p)
        files = []
        for seg, path in zip(snap.segments, snap.paths, strict=True):
            if seg.last_offset >= snap.log_start and bounds.keeps_segment(
                seg.base_offset, seg.last_offset, seg.min_timestamp, seg.max_timestamp
            ):
                log.verify_once(seg)
                files.append(literal(str(path)))
        visible = visible_filter_sql(
            snapshots.transactions.aborted_in(topic, p, start, end),
            stable_offset=snapshots.transactions.last_stable_offset(topic, p, 2**63 - 1),
        )
        # DeleteRecords can move the log start into a sealed segment: nothing below it shows.
        visible += f' AND "offset" >= {int(snap.log_start)}'
        if files:
            parts.append(
                f"SELECT {p}::INTEGER AS partition, * FROM read_parquet([{', '.join(files)}], union_by_name=true) "
                f"WHERE {visible}"
            )
        active = snap.active
        if active.num_rows:
            fields = snap.active_fields if snap.active_fields is not None else expand_json_objects(active)
            if fields is not None:
                active = active.append_column(FIELDS_COLUMN, fields)
            name = f"_active_{next(_ids)}"
            con.register(name, active)
            parts.append(f"SELECT {p}::INTEGER AS partition, * FROM {name} WHERE {visible}")
    if not parts:
        name = f"_empty_{next(_ids)}"
        con.register(name, RECORD_SCHEMA.empty_table())
        parts.append(f"SELECT 0::INTEGER AS partition, * FROM {name}")
    return f"SELECT * FROM ({' UNION ALL BY NAME '.join(parts)}) WHERE {bounds.where()}"


def replay(
    broker: Broker,
    topic: str,
    bounds: Bounds,
    *,
    raw: bool = False,
    headers: bool = False,
    progress: Callable[[int], object] | None = None,
    committed: bool = True,
) -> pa.Table:
    """Decoded records ordered by partition and offset. A key or value column that holds
    JSON or mixed formats comes with a ``_key_format`` / ``_value_format`` column so the
    client turns each cell back into what was sent. ``progress`` is called with the number
    of rows of each chunk as it arrives (for a progress bar); ``committed`` (default) leaves
    out records of aborted and still open transactions, as read_committed consumers do."""
    with Snapshots(broker, committed=committed) as snapshots:
        plain = None if raw or headers else plain_replay(broker, topic, bounds, snapshots)
        if plain is not None:
            if progress is not None:
                progress(plain.num_rows)
            return plain
        return _sql_replay(broker, topic, bounds, snapshots, raw=raw, headers=headers, progress=progress)


def _sql_replay(
    broker: Broker, topic: str, bounds: Bounds, snapshots: Snapshots, *, raw: bool, headers: bool,
    progress: Callable[[int], object] | None,
) -> pa.Table:  # fmt: skip
    with scratch_cursor(large_strings=True) as con:  # large: see _reader
        source = source_sql(broker, con, topic, bounds, snapshots)
        view = view_sql(con, source, raw=raw, headers=headers, formats=True)
        # No ORDER BY: DuckDB keeps the scan order (preserve_insertion_order), which is
        # partition then offset already; a full sort cost more than the read itself.
        rel = con.sql(f"SELECT * FROM ({view})")
        if progress is None:
            return _in_log_order(rel.to_arrow_table())
        reader = rel.to_arrow_reader(PROGRESS_CHUNK)
        chunks = []
        for chunk in reader:
            chunks.append(chunk)
            progress(chunk.num_rows)
        return _in_log_order(pa.Table.from_batches(chunks, schema=reader.schema))


def _in_log_order(table: pa.Table) -> pa.Table:
    """``table`` ordered by partition, then offset: as it is when DuckDB kept the order of
    the sources (checked, not assumed), else sorted."""
    if table.num_rows < 2:
        return table
    partitions = table.column("partition").to_numpy()
    offsets = table.column("offset").to_numpy()
    same = partitions[1:] == partitions[:-1]
    ordered = (partitions[1:] > partitions[:-1]) | (same & (offsets[1:] > offsets[:-1]))
    if bool(np.all(ordered)):
        return table
    return table.take(pc.sort_indices(table, [("partition", "ascending"), ("offset", "ascending")]))


def _reader() -> duckdb.DuckDBPyConnection:
    """A DuckDB database of its own, in memory, for one user query.

    It is not the catalog's: user SQL can read topics (views over their files) but cannot
    reach, let alone change, the broker's tables. Strings come back as Arrow large strings,
    so a replay may hold more than 2 GiB of text in one column."""
    con = duckdb.connect(":memory:")
    con.execute("SET arrow_large_buffer_size = true")
    return con


def estimate_rows(broker: Broker, topic: str, bounds: Bounds) -> int:
    """How many rows a replay of ``bounds`` returns (for sizing a progress bar)."""
    total = 0
    state = broker.topic(topic)
    for p in range(state.partitions) if bounds.partitions is None else bounds.partitions:
        log = broker.log(topic, p)
        start = max(log.log_start_offset, bounds.start_offset or 0)
        end = log.high_watermark if bounds.end_offset is None else min(bounds.end_offset, log.high_watermark)
        # Times as offsets: exact when timestamps grow with offsets, an estimate otherwise.
        if bounds.start_ms is not None:
            found = log.offset_for_timestamp(bounds.start_ms)
            start = max(start, log.high_watermark if found is None else found)
        if bounds.end_ms is not None:
            found = log.offset_for_timestamp(bounds.end_ms)
            end = min(end, log.high_watermark if found is None else found)
        total += max(end - start, 0)
    return total


def referenced_topics(broker: Broker, query: str) -> list[str]:
    """The topics ``query`` names, so only their views are built and only their files read."""
    try:
        names = duckdb.get_table_names(query)
    except duckdb.Error:
        names = set(broker.topics)  # let the query itself report the syntax error
    lowered = {n.lower() for n in names}
    return [t for t in broker.topics if t in names or t.lower() in lowered]


def sql(broker: Broker, query: str, *, committed: bool = True) -> pa.Table:
    """Run ``query`` with the topics it names available as views of their decoded records.

    The query runs on a connection of its own (see :func:`_reader`): it reads a snapshot
    of each topic it names and nothing else of the broker."""
    con = _reader()
    try:
        with Snapshots(broker, committed=committed) as snapshots:
            for topic in referenced_topics(broker, query):
                source = source_sql(broker, con, topic, Bounds(), snapshots)
                con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(topic)} AS {view_sql(con, source)}")
            return con.sql(query).to_arrow_table()
    finally:
        con.close()
