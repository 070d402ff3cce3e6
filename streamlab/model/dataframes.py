"""Arrow tables of records into the DataFrames users get, for every reader.

``replay`` and ``sql`` (both backends) and ``poll_frame`` (every consumer) finish here,
so the same records give the same columns, dtypes and decoding wherever they are read.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from streamlab.model.serde import FMT_JSON, FMT_STR, decode


def replay_dataframe(table: pa.Table, *, raw: bool) -> pd.DataFrame:
    """tz-aware UTC timestamps, keys and values decoded per their stored format (with
    ``raw``, JSON values stay text), headers as dicts.

    Field columns keep their types: integers and bools with missing values become pandas'
    nullable ``Int64`` / ``boolean`` (not float / object), times ``datetime64[us, UTC]``,
    text the ``string`` dtype. A field that is null in every record has no type to give
    back (JSON's null has none) and comes as an object column of None."""
    df = typed_frame(table)
    for column in ("key", "value"):
        if f"_{column}_format" in df.columns:
            formats = df[f"_{column}_format"]
            if raw and column == "value":  # the stored text of JSON values, not the objects
                formats = formats.where(formats != FMT_JSON, FMT_STR)
            cells = [decode(v, f) for v, f in zip(df[column], formats, strict=True)]
            # object dtype keeps ints as ints and None as None, as they were sent
            df[column] = pd.Series(cells, index=df.index, dtype=object)
            df = df.drop(columns=f"_{column}_format")
    if "headers" in df.columns:
        dicts = [{h["key"]: h["value"] for h in hs} if hs is not None else {} for hs in df["headers"]]
        df["headers"] = pd.Series(dicts, index=df.index, dtype=object)
    return df


def typed_frame(table: pa.Table) -> pd.DataFrame:
    """``table`` as pandas with the dtypes every replay and query gives: text as the
    pyarrow-backed ``string`` dtype (more than 2 GiB of it too), integers and bools with
    missing values as nullable ``Int64`` / ``boolean``, times as tz-aware UTC (DuckDB labels
    them "Etc/UTC")."""
    text = pd.StringDtype("pyarrow")
    df = table.to_pandas(types_mapper={pa.string(): text, pa.large_string(): text}.get, ignore_metadata=True)
    for i, column in enumerate(table.columns):
        kind = column.type
        if column.null_count and (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            df.isetitem(i, column.to_pandas(types_mapper=_NULLABLE.get))
        elif pa.types.is_timestamp(kind) and kind.tz is not None:
            df.isetitem(i, df.iloc[:, i].dt.tz_convert("UTC"))
    return df


_NULLABLE = {
    pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(), pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype(),
}  # fmt: skip
