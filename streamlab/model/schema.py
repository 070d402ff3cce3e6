"""The Arrow schema every stored record batch has, and building batches from columns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

HEADER_TYPE = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
TIMESTAMP_TYPE = pa.timestamp("ms", tz="UTC")

RECORD_SCHEMA = pa.schema(
    [
        ("offset", pa.int64()),
        ("timestamp", TIMESTAMP_TYPE),
        ("key", pa.binary()),
        ("key_format", pa.int8()),
        ("value", pa.binary()),
        ("value_format", pa.int8()),
        ("headers", HEADER_TYPE),
    ]
)
BASE_COLUMNS = RECORD_SCHEMA.names
# JSON-object values are expanded at seal time into the FIELDS_COLUMN struct (see fields.py)


def build_batch(
    *,
    base_offset: int,
    timestamps: Sequence[int] | np.ndarray | pa.Array,
    keys: Sequence[bytes | None] | pa.Array,
    key_formats: Sequence[int] | np.ndarray | pa.Array,
    values: Sequence[bytes | None] | pa.Array,
    value_formats: Sequence[int] | np.ndarray | pa.Array,
    headers: Sequence[list[tuple[str, bytes]] | None] | pa.Array | None = None,
) -> pa.RecordBatch:
    """A batch of ``len(timestamps)`` records with dense offsets from ``base_offset``."""
    n = len(timestamps)
    if headers is None:
        headers_array = pa.nulls(n, HEADER_TYPE)
    elif isinstance(headers, pa.Array):
        headers_array = headers
    else:
        headers_array = pa.array(
            [None if h is None else [{"key": k, "value": v} for k, v in h] for h in headers],
            HEADER_TYPE,
        )
    return pa.RecordBatch.from_arrays(
        [
            pa.array(np.arange(base_offset, base_offset + n, dtype=np.int64)),
            _timestamps(timestamps),
            keys if isinstance(keys, pa.Array) else pa.array(keys, pa.binary()),
            pa.array(key_formats, pa.int8()),
            values if isinstance(values, pa.Array) else pa.array(values, pa.binary()),
            pa.array(value_formats, pa.int8()),
            headers_array,
        ],
        schema=RECORD_SCHEMA,
    )


def _timestamps(values: Sequence[int] | np.ndarray | pa.Array) -> pa.Array:
    # Casting int64 to timestamp costs several times building the array: build it typed.
    if isinstance(values, pa.Array):
        return values.cast(TIMESTAMP_TYPE)
    if isinstance(values, np.ndarray):
        return pa.array(values.astype(np.int64, copy=False)).view(TIMESTAMP_TYPE)
    return pa.array(values, pa.int64()).view(TIMESTAMP_TYPE)


def with_base_offset(batch: pa.RecordBatch, base_offset: int) -> pa.RecordBatch:
    """The same records renumbered densely from ``base_offset``."""
    offsets = pa.array(np.arange(base_offset, base_offset + batch.num_rows, dtype=np.int64))
    return batch.set_column(0, "offset", offsets)
