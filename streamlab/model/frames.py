"""One record per DataFrame row: the part of ``send_many`` every backend shares.

Each row's value columns become one compact JSON object, written column by column by
DuckDB's ``json_object`` over an Arrow table: floats in their shortest exact form (pandas'
``to_json`` keeps 10 digits), and two to three times faster than pandas. How each dtype
travels, so that ``replay`` gives it back (``model.fields`` reads the text back typed):

- bool, integers, floats, ``Int64``/``boolean``/``Float64`` and str: as JSON; NA, NaN and
  infinities are null (as ``send`` writes them), so a nullable ``Int64`` column comes back
  ``Int64`` with its NAs;
- datetimes: ISO-8601 text in UTC to the microsecond, ``"2024-01-01T00:00:00.000000Z"``;
  **naive datetimes are taken as UTC**; they come back as ``datetime64[us, UTC]``;
- categoricals: their values (categories of str come back as str);
- object columns: each cell as ``send`` serialises a value (dict, list, str, number, bool,
  None); what ``send`` refuses (arbitrary objects, bytes, ``Decimal``, sets) is refused
  with a :class:`SerializationError` naming the column and row;
- timedelta, complex, period and interval columns are refused, naming the column.

A frame with nothing left after the key and timestamp columns has null values.

The JSON text is the record (what a consumer, ``poll`` or a wire Fetch reads), but the
columns are not parsed back from it: :func:`frame_rows` also keeps them as Arrow arrays,
typed as :mod:`streamlab.model.fields` would read the JSON (``FrameRows.fields``), and the
embedded producer hands them to the partition log with the batch, so the active segment's
replay and its sealed Parquet get them with no JSON round trip. Frames with a column whose
cells are embedded as JSON (dicts, lists, mixed objects) or text that looks like dates
(which the JSON reader would type as times) have no typed fields and are parsed as before.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.errors import ConfigError, InvalidTimestampError, SerializationError
from streamlab.model.scratch_sql import scratch_cursor
from streamlab.model.serde import FMT_JSON, FMT_NULL, dumps_value
from streamlab.model.types import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, check_timestamps

_ISO_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"  # DuckDB's strftime: %f is microseconds


@dataclass(frozen=True, slots=True)
class FrameRows:
    values: pa.Array  # binary: each row's other columns as a compact JSON object (null: no columns)
    timestamps: np.ndarray  # int64 milliseconds
    largest: int  # bytes of the longest value
    value_format: int = FMT_JSON  # FMT_NULL when no value column is left
    fields: pa.StructArray | None = None  # the value columns typed as fields.py reads the JSON, when exact


def frame_rows(df: pd.DataFrame, *, key: str | None, timestamp: str | None) -> FrameRows:
    """Values and timestamps of ``df``'s rows; ``key`` and ``timestamp`` name columns.

    An integer (or float) ``timestamp`` column holds epoch **milliseconds**, Kafka's unit;
    datetime columns and ISO strings are taken as they are (naive ones as UTC)."""
    if not isinstance(df, pd.DataFrame):
        raise SerializationError(
            f"send_many takes a pandas DataFrame (one record per row), got {type(df).__name__}; "
            "for a list of dicts use pd.DataFrame(rows), or send() each value"
        )
    for column in (key, timestamp):
        if column is not None and column not in df.columns:
            raise ConfigError(f"column {column!r} is not in the DataFrame (columns: {list(df.columns)})")
    n = len(df)
    value_columns = [c for c in df.columns if c not in (key, timestamp)]
    fields = None
    if value_columns:
        values, fields = _json_objects(df, value_columns)
        fmt = FMT_JSON
    else:  # an empty JSON document is not JSON: nothing left to send is a null value
        values, fmt = pa.nulls(n, pa.binary()), FMT_NULL
    if timestamp is not None:
        stamps = _timestamp_column(df[timestamp], timestamp)
    else:
        stamps = np.full(n, int(time.time() * 1000), dtype=np.int64)
    largest = int(pc.max(pc.binary_length(values)).as_py() or 0) if n else 0
    return FrameRows(values, stamps, largest, fmt, fields)


def json_objects(df: pd.DataFrame, columns: list[Any]) -> pa.Array:
    """Each row of ``df[columns]`` as a compact JSON object (binary), keys in column order."""
    return _json_objects(df, columns)[0]


def _json_objects(df: pd.DataFrame, columns: list[Any]) -> tuple[pa.Array, pa.StructArray | None]:
    """:func:`json_objects`, and the same columns as typed fields (None: not exactly)."""
    n = len(df)
    if n == 0:
        return pa.array([], pa.binary()), None
    arrays: dict[str, pa.Array] = {}
    members: list[str] = []
    typed: list[pa.Array] | None = []
    for i, name in enumerate(columns):
        array, kind = _arrow_column(name, _series(df, name))
        internal = f"c{i}"  # DuckDB names are case-insensitive: "A" and "a" would clash
        arrays[internal] = array
        term = {"plain": internal, "time": f"strftime({internal}, '{_ISO_UTC}')", "json": f"{internal}::JSON"}[kind]
        members.append(f"{_literal(str(name))}, {term}")
        field = None if typed is None else _as_read_back(array, kind)
        typed = None if typed is None or field is None else [*typed, field]
    table = pa.table(arrays)
    with scratch_cursor() as con:
        con.register("frame", table)
        out = con.sql(f"SELECT json_object({', '.join(members)})::BLOB AS v FROM frame").to_arrow_table()
    values = out.column(0).combine_chunks().cast(pa.binary())
    fields = None if typed is None else pa.StructArray.from_arrays(typed, names=[str(c) for c in columns])
    return values, fields


_DATE_LIKE = re.compile(r"\d{4}-\d\d-\d\d")


def _as_read_back(array: pa.Array, kind: str) -> pa.Array | None:
    """``array`` (a value column as :func:`_arrow_column` gives it) typed as
    :func:`streamlab.model.fields.expand_json_objects` types it after reading the JSON
    text back, or None when that cannot be told without the text (cells embedded as JSON,
    text the JSON reader may take for times, unsigned integers past int64)."""
    kind_type = array.type
    if kind == "json":
        return None
    if kind == "time":
        return array.cast(pa.timestamp("us", "UTC"))  # naive UTC microseconds, written as ISO text
    if pa.types.is_null(kind_type) or pa.types.is_boolean(kind_type):
        return array
    if pa.types.is_integer(kind_type):
        return None if kind_type == pa.uint64() else array.cast(pa.int64())
    if pa.types.is_floating(kind_type):  # float32 is written in its own shortest form, read back as double
        return array if kind_type == pa.float64() else None
    if pa.types.is_string(kind_type) or pa.types.is_large_string(kind_type) or pa.types.is_string_view(kind_type):
        present = array.drop_null()
        if len(present) and _DATE_LIKE.match(present[0].as_py()):
            return None
        try:
            return array.cast(pa.string())
        except pa.ArrowInvalid:  # past 2 GiB of text in one send_many: read back as before
            return None
    return None


def _series(df: pd.DataFrame, name: Any) -> pd.Series:
    column = df[name]
    if isinstance(column, pd.DataFrame):
        raise SerializationError(f"the DataFrame has more than one column named {name!r}; rename them")
    return column


def _arrow_column(name: Any, column: pd.Series) -> tuple[pa.Array, str]:
    """``column`` as an Arrow array and how it goes into JSON: "plain" (as it is), "time"
    (naive UTC timestamps, written as ISO text) or "json" (cells already JSON text)."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype) and dtype.categories.dtype == object:
        column = column.astype(object)
        dtype = column.dtype
    if pd.api.types.is_object_dtype(dtype):
        return _object_column(name, column)
    try:
        array = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise _refused(name, dtype) from exc
    if isinstance(array, pa.ChunkedArray):  # an Arrow-backed column of a pd.concat keeps its chunks
        array = array.combine_chunks()
    return _typed(name, dtype, array)


def _typed(name: Any, dtype: Any, array: pa.Array) -> tuple[pa.Array, str]:
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _typed(name, dtype, array.dictionary_decode())
    if pa.types.is_floating(kind):  # NaN and infinities are null, as send() writes them
        return pc.if_else(pc.is_finite(array), array, pa.scalar(None, kind)), "plain"
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_null(kind):
        return array, "plain"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return array, "plain"
    if pa.types.is_timestamp(kind):
        utc = array.cast(pa.timestamp(kind.unit, "UTC")) if kind.tz is None else array  # naive: taken as UTC
        return utc.cast(pa.timestamp("us", "UTC"), safe=False).cast(pa.timestamp("us")), "time"
    raise _refused(name, dtype)


def _object_column(name: Any, column: pd.Series) -> tuple[pa.Array, str]:
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    if inferred in ("string", "empty"):
        try:
            return pa.array(column, pa.string(), from_pandas=True), "plain"
        except (UnicodeEncodeError, pa.ArrowInvalid) as exc:
            raise _bad_text(name, column) from exc
    if inferred in ("datetime", "datetime64"):
        try:
            times = pd.to_datetime(column, utc=True)
        except (ValueError, TypeError, OverflowError) as exc:
            raise SerializationError(f"column {name!r} holds datetimes send_many cannot store: {exc}") from exc
        return _typed(name, times.dtype, pa.array(times, from_pandas=True))
    # Anything else goes cell by cell, as send() serialises a value, and is embedded as JSON.
    missing = column.isna().to_numpy()
    cells = column.tolist()
    text: list[str | None] = []
    for row, (cell, na) in enumerate(zip(cells, missing, strict=True)):
        if na:
            text.append(None)
            continue
        try:
            text.append(dumps_value(cell).decode())
        except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
            raise SerializationError(
                f"column {name!r} holds a value of type {type(cell).__name__} in row {row} ({cell!r:.60}), "
                f"which JSON cannot hold ({exc}). Convert the column (str, number, dict, list) or drop it"
            ) from exc
    return pa.array(text, pa.string()), "json"


def _refused(name: Any, dtype: Any) -> SerializationError:
    hint = "convert it (for example to str or a number) or drop it"
    if pd.api.types.is_timedelta64_dtype(dtype):
        hint = "convert it to a number, for example df[col].dt.total_seconds()"
    return SerializationError(
        f"column {name!r} has dtype {dtype}, which send_many cannot store as JSON and read back; {hint}"
    )


def _bad_text(name: Any, column: pd.Series) -> SerializationError:
    for row, cell in enumerate(column.tolist()):
        if isinstance(cell, str):
            try:
                cell.encode()
            except UnicodeEncodeError as exc:
                return SerializationError(
                    f"column {name!r} of the DataFrame holds text that is not valid Unicode in row {row}: "
                    f"{exc.reason} ({exc.object[exc.start : exc.end]!r}); repair it, for example with "
                    "df[col].str.encode('utf-8', 'replace').str.decode('utf-8')"
                )
    return SerializationError(f"column {name!r} holds text send_many cannot store")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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
