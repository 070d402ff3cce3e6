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
META_COLUMNS = ("topic", "partition", "offset", "timestamp", "key", "value", "value_error", "headers")


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def time_terms(start_ms: int | None, end_ms: int | None) -> list[str]:
    """SQL conditions keeping records from ``start_ms`` (inclusive) to ``end_ms`` (exclusive)."""
    terms = []
    if start_ms is not None:
        terms.append(f"epoch_ms(timestamp) >= {int(start_ms)}")
    if end_ms is not None:
        terms.append(f"epoch_ms(timestamp) < {int(end_ms)}")
    return terms


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
        return " AND ".join(terms + time_terms(self.start_ms, self.end_ms)) or "true"


def view_sql(
    con: duckdb.DuckDBPyConnection,
    source: str,
    *,
    raw: bool = False,
    headers: bool = True,
    formats: bool = False,
) -> str:
    """Decoded columns over ``source``: key and value by their stored format, JSON fields spread.

    Values that are JSON objects (see :mod:`.fields`) are spread into a column per field.
    When some other value is not (a plain string, bytes that are not JSON, a JSON array),
    it keeps its value in ``value`` (null on the rows spread into fields) and says why in
    ``value_error``: null on every row that was spread (and on null values), otherwise
    "not JSON" or "not a JSON object". Neither column exists when every value is an object.
    With ``raw``, ``value`` holds every row's stored value (JSON as text)."""
    rel = con.sql(source)
    columns = dict(zip(rel.columns, rel.types, strict=True))
    field_names: list[str] = []
    if FIELDS_COLUMN in columns and columns[FIELDS_COLUMN].id == "struct":
        field_names = [name for name, _ in columns[FIELDS_COLUMN].children]
    spread = f"{FIELDS_COLUMN} IS NOT NULL" if field_names else "false"
    stored = con.execute(f"SELECT list(DISTINCT key_format), list(DISTINCT value_format) FROM ({source})").fetchall()[0]
    key_formats, value_formats = set(stored[0] or []) - {0}, set(stored[1] or []) - {0}
    left_formats = value_formats  # of the values not spread into fields
    if field_names:
        left = con.execute(
            f"SELECT list(DISTINCT value_format) FROM ({source}) WHERE value IS NOT NULL AND {FIELDS_COLUMN} IS NULL"
        ).fetchall()[0][0]
        left_formats = set(left or []) - {0}
    select = ["partition", '"offset"', "timestamp", *_decoded("key", key_formats, formats)]
    for name in field_names:
        alias = f"value.{name}" if name in META_COLUMNS else name
        select.append(f"{FIELDS_COLUMN}.{quote(name)} AS {quote(alias)}")
    if raw:
        # raw: JSON values stay as their text, so the exact stored value is visible
        text_only = value_formats <= {FMT_STR, FMT_JSON}
        select.extend(_decoded("value", {FMT_STR} if text_only else value_formats, formats))
    elif not field_names:
        select.extend(_decoded("value", value_formats, formats))
    elif left_formats:
        select.extend(_decoded("value", left_formats, formats, where=f"NOT ({spread})"))
    if field_names and left_formats:
        select.append(
            f"CASE WHEN value IS NULL OR {spread} THEN NULL "
            f"WHEN value_format = {FMT_JSON} OR json_valid(TRY(decode(value))) THEN 'not a JSON object' "
            f"ELSE 'not JSON' END AS value_error"
        )
    if headers:
        select.append("headers")
    return f"SELECT {', '.join(select)} FROM ({source})"


def _decoded(column: str, formats: set[int], keep_formats: bool, *, where: str | None = None) -> list[str]:
    """Select terms for a key or value column given the formats stored in it (only on the
    rows ``where`` holds, when given; NULL on the others).

    Text (str, JSON) decodes to VARCHAR and bytes stay BLOB; a mix cannot share one SQL
    type, so for a replay (``keep_formats``) the raw bytes and their format go to the
    client to decode row by row, and in SQL the non-text ones read as NULL.
    """
    cell, fmt = (column, f"{column}_format") if where is None else (
        f"CASE WHEN {where} THEN {column} END", f"CASE WHEN {where} THEN {column}_format END"
    )  # fmt: skip
    if formats <= {FMT_STR}:
        return [f"decode({cell}) AS {column}"]
    if formats <= {FMT_BYTES}:
        return [f"{cell} AS {column}"]
    if keep_formats:
        return [f"{cell} AS {column}", f"{fmt} AS _{column}_format"]
    if formats <= {FMT_STR, FMT_JSON}:
        return [f"decode({cell}) AS {column}"]
    return [f"CASE WHEN {fmt} IN ({FMT_STR}, {FMT_JSON}) THEN decode({cell}) END AS {column}"]
