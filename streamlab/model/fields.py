"""Expanding JSON-object values into typed columns.

Analysts want ``df["amount"].sum()``, not ``df["value"].map(json.loads)``. When a segment
is sealed, its JSON-object values are parsed once by Arrow's C++ JSON reader into a struct
column (``value_fields``) stored beside the raw bytes, so replays and SQL read typed
columns straight from Parquet. The same function expands the active segment at query
time and the records a ``kafka://`` replay fetched.

Which values are expanded: those sent as dicts by streamlab, and bytes or text from any
other client (kcat, confluent-kafka, kafka-python...) that parse as a JSON object, leading
whitespace and newlines inside included. A value that is not a JSON object (not JSON at
all, or a JSON array, string or number) gets a null struct and keeps its raw value: it
never stops the others from being expanded. Typing, per top-level field:

- as Arrow's JSON reader infers it (int64, double, bool, string, struct, list);
- text that is all ISO-8601 times (``2024-01-01T00:00:00.000000Z``, what ``send_many``
  writes for datetimes, or ``+02:00``), and what Arrow's reader takes for times
  (``2024-01-01 10:00:00``, ``2024-01-01``), becomes ``timestamp[us, UTC]``; a time
  without a zone is taken as UTC (as ``send_many`` takes naive datetimes);
- a field whose values have different JSON types in different records (a number here, a
  string there) becomes text: strings as they are, other values as their JSON.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from streamlab.model.serde import FMT_BYTES, FMT_JSON, FMT_STR, loads

_NEWLINE = pa.scalar(b"\n", pa.binary())
_EMPTY = pa.scalar(b"{}", pa.binary())
_TEXT_FORMATS = pa.array([FMT_JSON, FMT_STR, FMT_BYTES], pa.int8())
_PADDED_OBJECT = r"^[ \t\r\n]+\{"  # RE2 over bytes: JSON whitespace, then an object
_ISO_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)?$"
_ISO_TIME_PY = re.compile(_ISO_TIME)
_TIME_TYPE = pa.timestamp("us", "UTC")
_PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


def object_candidates(values: pa.Array, formats: pa.Array) -> pa.BooleanArray:
    """Which values may be JSON objects: text or bytes whose first non-blank byte is "{"."""
    textual = pc.is_in(formats, value_set=_TEXT_FORMATS)
    starts = pc.starts_with(values, b"{")
    candidates = pc.fill_null(pc.and_(textual, starts), False)
    # Values other programs wrote may start with whitespace (pretty-printed JSON); looked
    # for only when some text does not start with "{", so streamlab's own JSON pays nothing.
    rest = pc.fill_null(pc.and_not(textual, starts), False)
    if pc.any(rest).as_py():
        padded = pc.fill_null(pc.and_(rest, pc.match_substring_regex(values, _PADDED_OBJECT)), False)
        candidates = pc.or_(candidates, padded)
    return candidates


def expand_json_objects(table: pa.Table | pa.RecordBatch) -> pa.StructArray | None:
    """A struct array of the top-level fields of each JSON-object value, or None when no
    value is a JSON object with fields. Rows whose value is not a JSON object get a null
    struct (see the module's docstring for which values are expanded and how typed)."""
    values = table.column("value")
    formats = table.column("value_format")
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
        formats = formats.combine_chunks()
    is_object = object_candidates(values, formats)
    if not pc.any(is_object).as_py():
        return None
    parsed = _read_lines(values, is_object)
    if parsed is None:  # some candidate is not one JSON object, or the types conflict
        is_object, parsed = _parse_each(values, is_object)
        if parsed is None:
            return None
    children = [_timed(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col) for col in parsed.columns]
    return pa.StructArray.from_arrays(children, names=parsed.column_names, mask=pc.invert(is_object))


def _read_lines(values: pa.Array, is_object: pa.Array) -> pa.Table | None:
    """Every candidate parsed in one pass of Arrow's JSON reader (others read as ``{}``),
    or None when that fails or does not give one row per value."""
    lines = pc.if_else(is_object, values, _EMPTY)
    joined = pc.binary_join_element_wise(lines, _NEWLINE, b"")
    longest = pc.max(pc.binary_length(joined)).as_py() or 0
    options = pa_json.ReadOptions(block_size=max(4 << 20, 2 * longest + 1))
    data = _contiguous(joined)
    # One object per line is what every JSON producer we know writes; pretty-printed
    # values (newlines inside) are read again in the reader's slower multi-line mode.
    for multiline in (False, True):
        try:
            parsed = pa_json.read_json(
                pa.BufferReader(data), read_options=options,
                parse_options=pa_json.ParseOptions(newlines_in_values=multiline),
            )  # fmt: skip
        except _PARSE_ERRORS:
            continue
        if parsed.num_rows == len(values) and parsed.num_columns:
            return parsed
    return None


def _parse_each(values: pa.Array, is_object: pa.Array) -> tuple[pa.Array, pa.Table | None]:
    """The slow path, for values from other programs: each candidate parsed on its own.
    Those that are JSON objects are written again compactly (one line, each key once) and
    read by Arrow's JSON reader as on the fast path; if their field types conflict, the
    fields are built from the parsed objects instead."""
    objects: list[dict[str, Any] | None] = []
    for value, candidate in zip(values.to_pylist(), is_object.to_pylist(), strict=True):
        obj = None
        if candidate:
            try:
                obj = loads(value)
            except orjson.JSONDecodeError:
                obj = None
        objects.append(obj if isinstance(obj, dict) else None)
    mask = pa.array([obj is not None for obj in objects], pa.bool_())
    if not any(obj for obj in objects):
        return mask, None
    lines = pa.array([orjson.dumps(obj) if obj is not None else b"{}" for obj in objects], pa.binary())
    parsed = _read_lines(lines, mask)
    if parsed is None:
        parsed = _build(objects)
    return mask, parsed


def _build(objects: list[dict[str, Any] | None]) -> pa.Table:
    names = list(dict.fromkeys(name for obj in objects if obj for name in obj))
    columns = []
    for name in names:
        cells = [obj.get(name) if obj else None for obj in objects]
        try:
            columns.append(pa.array(cells))
        except (*_PARSE_ERRORS, TypeError, ValueError, OverflowError):
            columns.append(pa.array([_as_text(cell) for cell in cells], pa.string()))
    return pa.table(columns, names=names)


def _as_text(cell: Any) -> str | None:
    if cell is None or isinstance(cell, str):
        return cell
    return orjson.dumps(cell).decode()


def _timed(column: pa.Array) -> pa.Array:
    """``column`` as UTC timestamps when it holds times: text that is all ISO-8601 times, or
    what Arrow's reader already took for times. Times without a zone are taken as UTC."""
    if pa.types.is_timestamp(column.type):
        return column.cast(_TIME_TYPE)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    present = column.drop_null()
    if not len(present) or not _ISO_TIME_PY.match(present[0].as_py()):  # most text columns stop here
        return column
    if not pc.all(pc.match_substring_regex(present, _ISO_TIME)).as_py():
        return column
    for zone in ("UTC", None):  # with a zone (Z, +02:00) each; else every one without
        try:
            return column.cast(pa.timestamp("us", zone)).cast(_TIME_TYPE)
        except _PARSE_ERRORS:
            continue
    return column


def _contiguous(array: pa.Array) -> pa.Buffer:
    # Values each followed by "\n" sit back to back in the data buffer: hand that slice to
    # the parser instead of materialising a million Python bytes objects.
    offsets = array.buffers()[1]
    width = 4 if array.type == pa.binary() else 8
    start = int.from_bytes(offsets[array.offset * width : (array.offset + 1) * width], "little")
    end = int.from_bytes(
        offsets[(array.offset + len(array)) * width : (array.offset + len(array) + 1) * width], "little"
    )
    return array.buffers()[2].slice(start, end - start)


def combine_typed_fields(parts: list[pa.StructArray | None]) -> pa.StructArray | None:
    """The typed fields of consecutive batches (``FrameRows.fields``, see ``model.frames``)
    as one array typed as :func:`expand_json_objects` would type their JSON text, or None
    when some batch has none or their types differ (then the text is read instead). As the
    JSON reader does, a field null in every row has the null type."""
    if not parts or any(p is None for p in parts):
        return None
    present = [p for p in parts if p is not None]
    if any(p.type != present[0].type for p in present):
        return None
    combined = pa.concat_arrays(present) if len(present) > 1 else present[0]
    if not combined.type.num_fields:
        return None
    children = combined.flatten()  # (no struct is null: send_many's rows are all objects)
    children = [pa.nulls(len(c)) if c.null_count == len(c) else c for c in children]
    names = [combined.type.field(i).name for i in range(combined.type.num_fields)]
    return pa.StructArray.from_arrays(children, names=names)
