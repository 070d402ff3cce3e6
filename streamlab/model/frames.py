"""One record per DataFrame row: the part of ``send_many`` every backend shares."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.errors import ConfigError, InvalidTimestampError, SerializationError
from streamlab.model.types import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, check_timestamps


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
    try:
        lines = values_df.to_json(orient="records", lines=True, date_format="iso", date_unit="ms")
    except UnicodeEncodeError as exc:  # a lone surrogate in a str cell
        raise SerializationError(
            f"a value column of the DataFrame holds text that is not valid Unicode: {exc.reason} "
            f"({exc.object[exc.start : exc.end]!r}); repair it, for example with "
            "df[col].str.encode('utf-8', 'replace').str.decode('utf-8')"
        ) from exc
    # pandas escapes every "/" as "\/"; undo it so send_many stores the same bytes as send().
    lines = lines.replace("\\/", "/")
    values = pa.array(lines.encode().split(b"\n")[:n], pa.binary()) if n else pa.array([], pa.binary())
    if timestamp is not None:
        stamps = _timestamp_column(df[timestamp], timestamp)
    else:
        stamps = np.full(n, int(time.time() * 1000), dtype=np.int64)
    largest = int(pc.max(pc.binary_length(values)).as_py() or 0) if n else 0
    return FrameRows(values, stamps, largest)


def _timestamp_column(column: pd.Series, name: str) -> np.ndarray:
    """int64 milliseconds of a column of times (datetimes, ISO strings, or numbers of
    milliseconds as ``send`` takes them), each one checked to be a timestamp replay can
    represent (as ``send`` checks one)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            raise InvalidTimestampError(f"column {name!r} has no time (NaN/inf) in row {int(bad[0])}")
        # The range is far below 2**53: float64 compares every value in it exactly.
        bad = np.flatnonzero((numbers < MIN_TIMESTAMP_MS) | (numbers > MAX_TIMESTAMP_MS))
        if len(bad):
            row = int(bad[0])
            raise InvalidTimestampError(
                f"column {name!r} has {column.iloc[row]} ms in row {row}, outside {MIN_TIMESTAMP_MS} (1970-01-01) "
                f".. {MAX_TIMESTAMP_MS} (9999-12-31T23:59:59.999Z), the range replay can represent"
            )
        return column.to_numpy(dtype=np.int64) if pd.api.types.is_integer_dtype(column) else numbers.astype(np.int64)
    try:
        times = pd.to_datetime(column, utc=True)
    except (ValueError, OverflowError, TypeError) as exc:  # unparseable text, out of pandas' range
        raise InvalidTimestampError(f"column {name!r} does not hold times send_many can store: {exc}") from exc
    missing = np.flatnonzero(times.isna().to_numpy())
    if len(missing):
        raise InvalidTimestampError(f"column {name!r} has no time (NaT/None) in row {int(missing[0])}")
    stamps = times.dt.as_unit("ms").astype("int64").to_numpy()
    check_timestamps(stamps, what=f"column {name!r}")
    return stamps
