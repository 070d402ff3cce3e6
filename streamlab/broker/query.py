"""Replay and SQL: every topic is a DuckDB table over its Parquet segments and active data.

A topic's *source* is the union (by column name) of its sealed Parquet files, read with
row-group pruning on offset and timestamp, and of its active segments, registered as Arrow
tables. On top of it the *view* decodes keys and values and spreads JSON-object values
into one column per top-level field, so ``SELECT key, sum(amount) FROM orders`` works.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from streamlab.broker.core import Broker
from streamlab.model.serde import FMT_BYTES, FMT_JSON, FMT_STR
from streamlab.storage.fields import expand_json_objects
from streamlab.storage.parquet_log import LogSnapshot
from streamlab.storage.schema import FIELDS_COLUMN, RECORD_SCHEMA

META_COLUMNS = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")
_ids = itertools.count()
PROGRESS_CHUNK = 256 * 1024  # rows per chunk when a progress bar follows a replay


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Bounds:
    """Which records of a topic a query reads; None means unbounded."""

    partitions: Sequence[int] | None = None
    start_offset: int | None = None
    end_offset: int | None = None  # exclusive
    start_ms: int | None = None
    end_ms: int | None = None  # exclusive

    def keeps_segment(self, base: int, last: int, min_ts: int, max_ts: int) -> bool:
        return not (
            (self.start_offset is not None and last < self.start_offset)
            or (self.end_offset is not None and base >= self.end_offset)
            or (self.start_ms is not None and max_ts < self.start_ms)
            or (self.end_ms is not None and min_ts >= self.end_ms)
        )

    def where(self) -> str:
        terms = []
        if self.start_offset is not None:
            terms.append(f'"offset" >= {int(self.start_offset)}')
        if self.end_offset is not None:
            terms.append(f'"offset" < {int(self.end_offset)}')
        if self.start_ms is not None:
            terms.append(f"epoch_ms(timestamp) >= {int(self.start_ms)}")
        if self.end_ms is not None:
            terms.append(f"epoch_ms(timestamp) < {int(self.end_ms)}")
        return " AND ".join(terms) or "true"


class Snapshots:
    """The partition snapshots one query reads (see ``LogSnapshot``): taken once, so a roll,
    retention or compaction during the query changes nothing it sees, and released when the
    query is done, which is when files dropped meanwhile are removed."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._taken: dict[tuple[str, int], LogSnapshot] = {}

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
        damage = snap.damage_in(start, bounds.end_offset if bounds.end_offset is not None else 2**63 - 1)
        if damage is not None:
            raise damage.error(topic, p)
        files = []
        for seg, path in zip(snap.segments, snap.paths, strict=True):
            if seg.last_offset >= snap.log_start and bounds.keeps_segment(
                seg.base_offset, seg.last_offset, seg.min_timestamp, seg.max_timestamp
            ):
                log.verify_once(seg)
                files.append(_literal(str(path)))
        if files:
            parts.append(
                f"SELECT {p}::INTEGER AS partition, * FROM read_parquet([{', '.join(files)}], union_by_name=true)"
            )
        active = snap.active
        if active.num_rows:
            fields = expand_json_objects(active)
            if fields is not None:
                active = active.append_column(FIELDS_COLUMN, fields)
            name = f"_active_{next(_ids)}"
            con.register(name, active)
            parts.append(f"SELECT {p}::INTEGER AS partition, * FROM {name}")
    if not parts:
        name = f"_empty_{next(_ids)}"
        con.register(name, RECORD_SCHEMA.empty_table())
        parts.append(f"SELECT 0::INTEGER AS partition, * FROM {name}")
    return f"SELECT * FROM ({' UNION ALL BY NAME '.join(parts)}) WHERE {bounds.where()}"


def view_sql(
    con: duckdb.DuckDBPyConnection,
    source: str,
    *,
    raw: bool = False,
    headers: bool = True,
    formats: bool = False,
) -> str:
    """Decoded columns over ``source``: key and value by their stored format, JSON fields spread."""
    rel = con.sql(source)
    columns = dict(zip(rel.columns, rel.types, strict=True))
    stored = con.execute(f"SELECT list(DISTINCT key_format), list(DISTINCT value_format) FROM ({source})").fetchall()[0]
    key_formats, value_formats = set(stored[0] or []) - {0}, set(stored[1] or []) - {0}
    select = ["partition", '"offset"', "timestamp", *_decoded("key", key_formats, formats)]
    field_names: list[str] = []
    if FIELDS_COLUMN in columns:
        field_names = [name for name, _ in columns[FIELDS_COLUMN].children]
    objects_only = bool(field_names) and con.execute(
        f"SELECT count(*) FROM ({source}) WHERE value IS NOT NULL AND {FIELDS_COLUMN} IS NULL"
    ).fetchall() == [(0,)]
    if objects_only:
        for name in field_names:
            alias = f"value.{name}" if name in META_COLUMNS else name
            select.append(f"{FIELDS_COLUMN}.{quote(name)} AS {quote(alias)}")
    if raw or not objects_only:
        # raw: JSON values stay as their text, so the exact stored value is visible
        text_only = raw and value_formats <= {FMT_STR, FMT_JSON}
        select.extend(_decoded("value", {FMT_STR} if text_only else value_formats, formats))
    if headers:
        select.append("headers")
    return f"SELECT {', '.join(select)} FROM ({source})"


def _decoded(column: str, formats: set[int], keep_formats: bool) -> list[str]:
    """Select terms for a key or value column given the formats stored in it.

    Text (str, JSON) decodes to VARCHAR and bytes stay BLOB; a mix cannot share one SQL
    type, so for a replay (``keep_formats``) the raw bytes and their format go to the
    client to decode row by row, and in SQL the non-text ones read as NULL.
    """
    if formats <= {FMT_STR}:
        return [f"decode({column}) AS {column}"]
    if formats <= {FMT_BYTES}:
        return [column]
    if keep_formats:
        return [column, f"{column}_format AS _{column}_format"]
    if formats <= {FMT_STR, FMT_JSON}:
        return [f"decode({column}) AS {column}"]
    return [f"CASE WHEN {column}_format IN ({FMT_STR}, {FMT_JSON}) THEN decode({column}) END AS {column}"]


def replay(
    broker: Broker,
    topic: str,
    bounds: Bounds,
    *,
    raw: bool = False,
    headers: bool = False,
    progress: Callable[[int], object] | None = None,
) -> pa.Table:
    """Decoded records ordered by partition and offset. A key or value column that holds
    JSON or mixed formats comes with a ``_key_format`` / ``_value_format`` column so the
    client turns each cell back into what was sent. ``progress`` is called with the number
    of rows of each chunk as it arrives (for a progress bar)."""
    con = _reader()
    try:
        with Snapshots(broker) as snapshots:
            source = source_sql(broker, con, topic, bounds, snapshots)
            view = view_sql(con, source, raw=raw, headers=headers, formats=True)
            rel = con.sql(f'SELECT * FROM ({view}) ORDER BY partition, "offset"')
            if progress is None:
                return rel.to_arrow_table()
            reader = rel.to_arrow_reader(PROGRESS_CHUNK)
            chunks = []
            for chunk in reader:
                chunks.append(chunk)
                progress(chunk.num_rows)
            return pa.Table.from_batches(chunks, schema=reader.schema)
    finally:
        con.close()


def _reader() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection of its own, in memory, for one replay or user query.

    It is not the catalog's: user SQL can read topics (views over their files) but cannot
    reach, let alone change, the broker's tables. Strings come back as Arrow large strings,
    so a replay may hold more than 2 GiB of text in one column."""
    con = duckdb.connect(":memory:")
    con.execute("SET arrow_large_buffer_size = true")
    return con


def estimate_rows(broker: Broker, topic: str, bounds: Bounds) -> int:
    """An upper bound on the rows a replay of ``bounds`` returns (for sizing a progress bar)."""
    total = 0
    state = broker.topic(topic)
    for p in range(state.partitions) if bounds.partitions is None else bounds.partitions:
        log = broker.log(topic, p)
        start = max(log.log_start_offset, bounds.start_offset or 0)
        end = log.high_watermark if bounds.end_offset is None else min(bounds.end_offset, log.high_watermark)
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


def sql(broker: Broker, query: str) -> pa.Table:
    """Run ``query`` with the topics it names available as views of their decoded records.

    The query runs on a connection of its own (see :func:`_reader`): it reads a snapshot
    of each topic it names and nothing else of the broker."""
    con = _reader()
    try:
        with Snapshots(broker) as snapshots:
            for topic in referenced_topics(broker, query):
                source = source_sql(broker, con, topic, Bounds(), snapshots)
                con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(topic)} AS {view_sql(con, source)}")
            return con.sql(query).to_arrow_table()
    finally:
        con.close()
