"""Turning a replay's Arrow table into the DataFrame users get, for every backend.

Both the embedded Lab and ``kafka://`` run the same DuckDB view (broker/query.py) and
finish here, so their replays have the same columns, types and decoding.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from streamlab.errors import ConfigError, InvalidOffsetError
from streamlab.model.serde import FMT_JSON, FMT_STR, decode
from streamlab.model.timeparse import to_ms


def replay_bound(which: str, value: Any) -> dict[str, int]:
    """``start``/``end`` of a replay as Bounds fields: an int is an offset, else a time."""
    if value is None:
        return {}
    if isinstance(value, bool):
        raise InvalidOffsetError(f"{which} must be an offset (int) or a time, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidOffsetError(f"{which} offset must be >= 0, got {value}")
        return {f"{which}_offset": value}
    try:
        return {f"{which}_ms": to_ms(value, what=which)}
    except ConfigError as exc:
        raise InvalidOffsetError(str(exc)) from exc


def replay_dataframe(table: pa.Table, *, raw: bool) -> pd.DataFrame:
    """tz-aware UTC timestamps, keys and values decoded per their stored format (with
    ``raw``, JSON values stay text), headers as dicts."""
    text = pd.StringDtype("pyarrow")  # large strings too: a replay may hold more than 2 GiB of text
    df = table.to_pandas(types_mapper={pa.string(): text, pa.large_string(): text}.get, ignore_metadata=True)
    df["timestamp"] = df["timestamp"].dt.tz_convert("UTC")  # DuckDB says "Etc/UTC"
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
        df["headers"] = [{h["key"]: h["value"] for h in hs} if hs is not None else {} for hs in df["headers"]]
    return df
