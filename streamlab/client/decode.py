"""Arrow record tables into :class:`~streamlab.model.types.Record` objects.

This is the consumer's per-record hot path, so each column is converted by one C-level
call where the formats allow it (a run of JSON values is parsed as one JSON array, str
keys come from Arrow's UTF-8 cast) and the records are built by ``map`` over ``zip``.
"""

from __future__ import annotations

import gc
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from orjson import JSONDecodeError

from streamlab.model.fields import object_candidates
from streamlab.model.serde import FMT_BYTES, FMT_JSON, FMT_NULL, FMT_STR, decode, decode_value, loads
from streamlab.model.types import Record

_make_record = partial(tuple.__new__, Record)
_COMMA = ord(",")


def _json_values(column: pa.Array) -> list[Any]:
    """Every value of a null-free column of JSON documents, parsed as one JSON array."""
    ends = np.frombuffer(column.buffers()[1], dtype=np.int32, count=len(column) + 1, offset=column.offset * 4)
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[ends[0] : ends[-1]]
    joined = np.insert(data, ends[1:-1] - ends[0], _COMMA)  # "v1,v2,...,vn"
    try:
        parsed = loads(b"[" + joined.tobytes() + b"]")
    except JSONDecodeError:  # an empty value older versions stored: one by one, it reads as null
        parsed = []
    if len(parsed) != len(column):  # cannot happen for valid documents; be safe anyway
        return [decode(v, FMT_JSON) for v in column.to_pylist()]
    return parsed


def _column(table: pa.Table, name: str, formats: pa.ChunkedArray, *, objects: bool = False) -> list[Any]:
    """The cells of the key or value column ``name`` as they were sent; with ``objects``
    (values), bytes holding a JSON object as dicts (see ``serde.decode_value``)."""
    column = table.column(name)
    kinds = set(pc.unique(formats).to_pylist())
    if kinds == {FMT_JSON} and column.num_chunks and column.type == pa.binary():
        return _json_values(column.combine_chunks())
    if kinds <= {FMT_JSON, FMT_NULL}:
        return [decode(v, FMT_JSON) for v in column.to_pylist()]
    if kinds <= {FMT_STR, FMT_NULL}:
        try:
            return column.cast(pa.string()).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return [None if v is None else v.decode() for v in column.to_pylist()]  # raise like before
    raw = column.to_pylist()
    if objects and FMT_BYTES in kinds:
        stored = formats.combine_chunks()
        candidates = pc.and_(object_candidates(column.combine_chunks(), stored), pc.equal(stored, FMT_BYTES))
        for row in np.flatnonzero(candidates.to_numpy(zero_copy_only=False)).tolist():
            raw[row] = decode_value(raw[row], FMT_BYTES)
    if kinds <= {FMT_BYTES, FMT_NULL}:
        return raw
    return [v if isinstance(v, dict) else decode(v, f) for v, f in zip(raw, formats.to_pylist(), strict=True)]


def to_records(topic: str, partition: int, table: pa.Table) -> list[Record]:
    n = table.num_rows
    if n == 0:
        return []
    offset_column = table.column("offset")
    first, last = offset_column[0].as_py(), offset_column[n - 1].as_py()
    offsets: Any = range(first, first + n) if last - first == n - 1 else offset_column.to_pylist()
    stamps = table.column("timestamp").to_numpy().view(np.int64).tolist()
    # Records are named tuples, which CPython's collector never untracks: building a batch
    # of thousands would run several young collections, each promoting the batch towards
    # the old generation, and so trigger full collections of the caller's whole heap (a
    # third of the consumer's time in a notebook holding a large DataFrame). Collection is
    # paused while the batch is built; the objects are counted as usual and looked at by
    # the next collection.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        keys = _column(table, "key", table.column("key_format"))
        values = _column(table, "value", table.column("value_format"), objects=True)
        headers_col = table.column("headers")
        if headers_col.null_count == n:
            headers: list[dict[str, bytes]] = [{} for _ in range(n)]
        else:
            headers = [{h["key"]: h["value"] for h in hs} if hs else {} for hs in headers_col.to_pylist()]
        return list(map(_make_record, zip(repeat(topic, n), repeat(partition, n), offsets, stamps, keys, values,
                                          headers, strict=True)))  # fmt: skip
    finally:
        if paused:
            gc.enable()
