"""One record per DataFrame row: the part of ``send_many`` every backend shares."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.errors import ConfigError, SerializationError


@dataclass(frozen=True, slots=True)
class FrameRows:
    values: pa.Array  # binary: each row's other columns as a compact JSON object
    timestamps: np.ndarray  # int64 milliseconds
    largest: int  # bytes of the longest value


def frame_rows(df: pd.DataFrame, *, key: str | None, timestamp: str | None) -> FrameRows:
    """Values and timestamps of ``df``'s rows; ``key`` and ``timestamp`` name columns."""
    if not isinstance(df, pd.DataFrame):
        raise SerializationError(
            f"send_many takes a pandas DataFrame (one record per row), got {type(df).__name__}; "
            "for a list of dicts use pd.DataFrame(rows), or send() each value"
        )
    for column in (key, timestamp):
        if column is not None and column not in df.columns:
            raise ConfigError(f"column {column!r} is not in the DataFrame (columns: {list(df.columns)})")
    n = len(df)
    values_df = df.drop(columns=[c for c in (key, timestamp) if c is not None])
    lines = values_df.to_json(orient="records", lines=True, date_format="iso", date_unit="ms")
    # pandas escapes every "/" as "\/"; undo it so send_many stores the same bytes as send().
    lines = lines.replace("\\/", "/")
    values = pa.array(lines.encode().split(b"\n")[:n], pa.binary()) if n else pa.array([], pa.binary())
    if timestamp is not None:
        stamps = pd.to_datetime(df[timestamp], utc=True).dt.as_unit("ms").astype("int64").to_numpy()
    else:
        stamps = np.full(n, int(time.time() * 1000), dtype=np.int64)
    largest = int(pc.max(pc.binary_length(values)).as_py() or 0) if n else 0
    return FrameRows(values, stamps, largest)
