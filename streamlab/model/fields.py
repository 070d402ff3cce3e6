"""Expanding JSON-object values into typed columns.

Analysts want ``df["amount"].sum()``, not ``df["value"].map(json.loads)``. When a segment
is sealed, its JSON-object values are parsed once by Arrow's C++ JSON reader into a struct
column (``value_fields``) stored beside the raw bytes, so replays and SQL read typed
columns straight from Parquet. The same function expands the active segment at query time.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from streamlab.model.serde import FMT_JSON

_NEWLINE = pa.scalar(b"\n", pa.binary())


def expand_json_objects(table: pa.Table | pa.RecordBatch) -> pa.StructArray | None:
    """A struct array of the top-level fields of each JSON-object value, or None.

    Rows whose value is not a JSON object get a null struct. Returns None when no row is
    a JSON object, or when the objects do not share one schema (such values stay raw).
    """
    values = table.column("value")
    formats = table.column("value_format")
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
        formats = formats.combine_chunks()
    is_object = pc.fill_null(pc.and_(pc.equal(formats, FMT_JSON), pc.starts_with(values, b"{")), False)
    if not pc.any(is_object).as_py():
        return None
    lines = pc.if_else(is_object, values, pa.scalar(b"{}", pa.binary()))
    joined = pc.binary_join_element_wise(lines, _NEWLINE, b"")
    longest = pc.max(pc.binary_length(joined)).as_py() or 0
    try:
        parsed = pa_json.read_json(
            pa.BufferReader(_contiguous(joined)),
            read_options=pa_json.ReadOptions(block_size=max(4 << 20, 2 * longest + 1)),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if parsed.num_rows != len(values) or parsed.num_columns == 0:
        return None
    return pa.StructArray.from_arrays(
        [col.combine_chunks() for col in parsed.columns],
        names=parsed.column_names,
        mask=pc.invert(is_object),
    )


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
