"""Record views in SQL, the same on every backend: which rows a query reads (:class:`Bounds`),
and the decoded columns over stored rows (:func:`view_sql`): keys and values by their
stored format, JSON-object values spread into a column per top-level field.

A *source* is any DuckDB relation with the stored record columns (``partition``, ``offset``,
``timestamp``, ``key``, ``key_format``, ``value``, ``value_format``, ``headers`` and, when
values were JSON objects, the ``value_fields`` struct): the embedded broker's Parquet
segments and active batches, or records a Kafka backend fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from streamlab.model.serde import FMT_BYTES, FMT_JSON, FMT_STR

FIELDS_COLUMN = "value_fields"  # JSON-object values expanded into a struct (see fields.py)
META_COLUMNS = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a SQL string literal."""
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
