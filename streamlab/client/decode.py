"""Arrow record tables into :class:`~streamlab.model.types.Record` objects."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.model.serde import FMT_BYTES, FMT_JSON, FMT_NULL, FMT_STR, decode, loads
from streamlab.model.types import Record


def _column(table: pa.Table, name: str, formats: pa.ChunkedArray) -> list[Any]:
    raw = table.column(name).to_pylist()
    kinds = set(pc.unique(formats).to_pylist())
    if kinds <= {FMT_JSON, FMT_NULL}:
        return [None if v is None else loads(v) for v in raw]
    if kinds <= {FMT_STR, FMT_NULL}:
        return [None if v is None else v.decode() for v in raw]
    if kinds <= {FMT_BYTES, FMT_NULL}:
        return raw
    return [decode(v, f) for v, f in zip(raw, formats.to_pylist(), strict=True)]


def to_records(topic: str, partition: int, table: pa.Table) -> list[Record]:
    if table.num_rows == 0:
        return []
    offsets = table.column("offset").to_pylist()
    stamps = table.column("timestamp").cast(pa.int64()).to_pylist()
    keys = _column(table, "key", table.column("key_format"))
    values = _column(table, "value", table.column("value_format"))
    headers_col = table.column("headers")
    if headers_col.null_count == table.num_rows:
        return [
            Record(topic, partition, o, t, k, v, {}) for o, t, k, v in zip(offsets, stamps, keys, values, strict=True)
        ]
    headers = [{h["key"]: h["value"] for h in hs} if hs else {} for hs in headers_col.to_pylist()]
    return [
        Record(topic, partition, o, t, k, v, h)
        for o, t, k, v, h in zip(offsets, stamps, keys, values, headers, strict=True)
    ]
