"""``lab.browse``: a page of a topic's records, filtered, without reading the topic whole.

Written once over the backend port. A page is read partition by partition, in offset
order, as windows of offsets: each window is one ``replay_table`` call with offset bounds
(the embedded broker prunes segments by offset, ``kafka://`` fetches just that range), then
the time bounds, ``where`` and ``search`` run in DuckDB over the window's decoded columns
with ``LIMIT`` what the page still needs. Windows start small and double while the filter
drops most rows, so a selective filter over a large topic takes few round trips and the
memory a page takes stays bounded by the window, not by the topic.

Each window is decoded on its own, as ``lab.replay`` of that range would be: a JSON field
that no record of a window has is NULL there (so ``where`` treats it as missing), and a
column ``where`` names that no window read has raises :class:`QueryError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.errors import ConfigError, InvalidOffsetError, QueryError
from streamlab.front.replay_frame import replay_bound
from streamlab.front.user_sql import query_errors
from streamlab.model.dataframes import replay_dataframe
from streamlab.model.scratch_sql import scratch_cursor
from streamlab.model.serde import FMT_JSON, FMT_STR
from streamlab.model.views import Bounds, quote, time_terms
from streamlab.port.backend import Backend

FIRST_WINDOW = 1_000  # offsets read first when a filter may drop rows
MAX_WINDOW = 65_536  # offsets per read at most: what one page may hold in memory while filtering
_TABLE = "_browse_window"
EMPTY_COLUMNS = ["partition", "offset", "timestamp", "key", "value", "headers"]
TRANSACTION_COLUMNS = ["transaction", "marker", "producer_id", "producer_epoch"]  # browse(transactions=True)


@dataclass(slots=True)
class _Filter:
    """Time bounds, ``where`` and ``search`` as SQL over one window's decoded columns."""

    where: str | None
    search: str | None
    start_ms: int | None
    end_ms: int | None
    columns: set[str]  # lower-cased names ``where`` refers to
    seen: set[str] = field(default_factory=set)  # lower-cased columns of every window read

    @property
    def drops_rows(self) -> bool:
        return any(v is not None for v in (self.where, self.search, self.start_ms, self.end_ms))

    def run(self, con: duckdb.DuckDBPyConnection, window: pa.Table, limit: int) -> pa.Table:
        present = {name.lower() for name in window.column_names}
        self.seen |= present
        missing = sorted(self.columns - present)
        nulls = "".join(f", NULL AS {quote(name)}" for name in missing)  # a field no record of the window has
        terms = time_terms(self.start_ms, self.end_ms)
        if self.where is not None:
            terms.append(f"({self.where})")
        params: list[Any] = []
        if self.search is not None:
            texts = [_text(c, window.schema) for c in ("key", "value") if c in window.column_names]
            haystack = " || chr(10) || ".join(f"coalesce({t}, '')" for t in texts) or "''"
            terms.append(f"contains(lower({haystack}), lower(?))")
            params.append(self.search)
        con.register(_TABLE, window)
        try:
            with query_errors():
                sql = f"SELECT * EXCLUDE ({', '.join(quote(m) for m in missing)}) " if missing else "SELECT * "
                sql += (f"FROM (SELECT *{nulls} FROM {_TABLE}) WHERE {' AND '.join(terms) or 'true'} "
                        f'ORDER BY "offset" LIMIT {int(limit)}')  # fmt: skip
                return con.sql(sql, params=params).to_arrow_table()
        finally:
            con.unregister(_TABLE)

    def check_columns(self) -> None:
        """A column ``where`` names that no window read had is a typo, not a missing field."""
        unknown = sorted(self.columns - self.seen)
        if unknown and self.seen:
            raise QueryError(
                f"where names column(s) {unknown} that no record read has; the columns are "
                f'{sorted(self.seen - {"_key_format", "_value_format"})} (quote names like "offset")'
            )


def _text(column: str, schema: pa.Schema) -> str:
    """SQL for the text of a key or value column of a window (bytes that are not UTF-8 as escapes)."""
    kind = schema.field(column).type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return quote(column)
    if f"_{column}_format" in schema.names:
        return (f"CASE WHEN _{column}_format IN ({FMT_STR}, {FMT_JSON}) THEN decode({quote(column)}) "
                f"ELSE coalesce(try(decode({quote(column)})), CAST({quote(column)} AS VARCHAR)) END")  # fmt: skip
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return f"coalesce(try(decode({quote(column)})), CAST({quote(column)} AS VARCHAR))"
    return f"CAST({quote(column)} AS VARCHAR)"


def where_columns(where: str | None) -> set[str]:
    """The column names (lower-cased) ``where`` refers to; QueryError if it is not one SQL expression."""
    if where is None:
        return set()
    if not isinstance(where, str) or not where.strip():
        raise QueryError(f'where must be a DuckDB expression such as "amount > 10", got {where!r}')
    statement = f"SELECT * FROM {_TABLE} WHERE ({where})"
    with query_errors():
        if len(duckdb.extract_statements(statement)) != 1:
            raise QueryError(f"where must be one expression, not statements: {where!r}")
        parsed = json.loads(duckdb.execute("SELECT json_serialize_sql(?)", [statement]).fetchall()[0][0])
    if parsed.get("error"):
        raise QueryError(str(parsed.get("error_message", "cannot parse where")))
    node = parsed["statements"][0]["node"]
    if (
        node.get("type") != "SELECT_NODE"
        or node.get("modifiers")
        or node.get("from_table", {}).get("table_name") != _TABLE
    ):
        raise QueryError(f"where must be one expression over the records' columns: {where!r}")
    lambdas: set[str] = set()
    refs: set[str] = set()
    for item in _walk(node["where_clause"]):
        if item.get("class") == "LAMBDA":
            lambdas |= {r["column_names"][0].lower() for r in _walk(item["lhs"]) if r.get("class") == "COLUMN_REF"}
        elif item.get("class") == "COLUMN_REF" and item.get("column_names"):
            refs.add(str(item["column_names"][0]).lower())
    return refs - lambdas


def _walk(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _walk(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _walk(value)


def browse(
    backend: Backend,
    topic: str,
    partitions: Sequence[int],
    *,
    where: str | None,
    search: str | None,
    start: Any,
    end: Any,
    limit: int,
    after: tuple[int, int] | None,
    transactions: bool = False,
) -> pd.DataFrame:
    """Up to ``limit`` matching records of ``partitions``, by partition then offset (see ``Lab.browse``)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer (rows per page), got {limit!r}")
    if search is not None and not isinstance(search, str):
        raise ConfigError(f"search must be text, got {type(search).__name__} {search!r}")
    last = None
    if isinstance(start, int) and not isinstance(start, bool) and start < 0:
        last, start = -start, None  # "latest N": the last N offsets of each partition
    lower, upper = replay_bound("start", start), replay_bound("end", end)
    filt = _Filter(where, search or None, lower.get("start_ms"), upper.get("end_ms"), where_columns(where))
    after_partition, after_offset = _cursor(after)
    marks = {p: (low, high) for p, low, high in backend.offset_rows(topic)}
    chosen = [p for p in sorted(set(partitions)) if p >= after_partition]
    from_time = backend.offsets_for_time(topic, chosen, filt.start_ms) if filt.start_ms is not None else {}
    pages: list[pa.Table] = []
    rows = 0
    with scratch_cursor() as con:  # ``where`` is an expression: it reads, never changes the database
        for p in chosen:
            low, high = marks.get(p, (0, 0))
            lo = max(low, lower.get("start_offset", 0), from_time.get(p, 0))
            if last is not None:
                lo = max(lo, high - last)
            if p == after_partition:
                lo = max(lo, after_offset + 1)
            hi = min(high, upper.get("end_offset", high))
            window = FIRST_WINDOW
            while lo < hi and rows < limit:
                span = min(max(window, limit - rows) if filt.drops_rows else limit - rows, MAX_WINDOW)
                bounds = Bounds(partitions=[p], start_offset=lo, end_offset=min(lo + span, hi))
                read = backend.replay_table(topic, bounds, raw=True, headers=True, progress=None,
                                            committed=not transactions)  # fmt: skip
                if transactions:
                    read = with_transactions(read, backend.transaction_rows(topic, p, lo, min(lo + span, hi)), p)
                kept = filt.run(con, read, limit - rows)
                if kept.num_rows:
                    pages.append(kept)
                    rows += kept.num_rows
                if kept.num_rows < span // 2:
                    window = min(window * 2, MAX_WINDOW)
                lo += span
    if where is not None:
        filt.check_columns()
    frame = _frame(pages)
    if transactions and "transaction" not in frame.columns:
        for name in TRANSACTION_COLUMNS:
            frame[name] = pd.Series(dtype="string" if name in ("transaction", "marker") else "Int64")
    return frame


def with_transactions(read: pa.Table, txn: pa.Table, partition: int) -> pa.Table:
    """A read_uncommitted window with each record's ``transaction`` status ("committed":
    what read_committed readers get too, non-transactional records included; "aborted";
    "open") and the markers as rows of their own (``transaction`` "marker")."""
    status = dict(zip(txn.column("offset").to_pylist(), txn.column("transaction").to_pylist(), strict=True))
    producers = dict(zip(txn.column("offset").to_pylist(), txn.column("producer_id").to_pylist(), strict=True))
    offsets = read.column("offset").to_pylist()
    read = read.append_column("transaction", pa.array([status.get(o, "committed") for o in offsets], pa.string()))
    read = read.append_column("marker", pa.nulls(read.num_rows, pa.string()))
    read = read.append_column("producer_id", pa.array([producers.get(o) for o in offsets], pa.int64()))
    read = read.append_column("producer_epoch", pa.nulls(read.num_rows, pa.int32()))
    markers = txn.filter(pc.equal(txn.column("transaction"), "marker"))
    if not markers.num_rows:
        return read
    markers = markers.append_column("partition", pa.array([partition] * markers.num_rows, pa.int32()))
    # the window's own types (DuckDB's timestamps, its partition type) for the shared columns
    markers = pa.table({name: markers.column(name).cast(read.schema.field(name).type) for name in markers.column_names})
    merged = pa.concat_tables([read, markers], promote_options="permissive")
    return merged.sort_by("offset")


def _cursor(after: tuple[int, int] | None) -> tuple[int, int]:
    """(partition, offset) a page continues after; (-1, -1) for the first page."""
    if after is None:
        return -1, -1
    try:
        partition, offset = after
    except (TypeError, ValueError):
        raise InvalidOffsetError(f"after must be a (partition, offset) pair, got {after!r}") from None
    for name, value in (("partition", partition), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidOffsetError(f"after's {name} must be an integer >= 0, got {value!r}")
    return partition, offset


def _frame(pages: list[pa.Table]) -> pd.DataFrame:
    """The windows' rows as one frame, shaped as ``lab.replay(raw=True, headers=True)``."""
    frames = [replay_dataframe(page, raw=True) for page in pages]
    if not frames:
        empty = {name: pd.Series(dtype=object) for name in EMPTY_COLUMNS}
        empty.update(partition=pd.Series(dtype="int32"), offset=pd.Series(dtype="int64"),
                     timestamp=pd.Series(dtype="datetime64[ms, UTC]"))  # fmt: skip
        return pd.DataFrame(empty)
    if len(frames) == 1:
        return frames[0]
    out = pd.concat(frames, ignore_index=True)
    order = [c for c in EMPTY_COLUMNS[:4] if c in out.columns]
    tail = [c for c in ("value", "headers") if c in out.columns]
    return out[order + [c for c in out.columns if c not in order + tail] + tail]
