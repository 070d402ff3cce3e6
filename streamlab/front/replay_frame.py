"""What a replay is asked for, the same on every backend: its bounds (offsets or times)
and how keys and values are read (``key_format=``/``value_format=``). The DataFrame
itself is shaped in :mod:`streamlab.model.dataframes`."""

from __future__ import annotations

from typing import Any

import pandas as pd
from orjson import JSONDecodeError

from streamlab.errors import ConfigError, InvalidOffsetError
from streamlab.model.serde import dumps_value, loads
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


RAW_FORMATS = ("string", "bytes")  # read from the stored values, not the spread fields
_RECORD_COLUMNS = frozenset({"topic", "partition", "offset", "timestamp", "key", "value", "value_error", "headers"})


def spread_fields(frame: pd.DataFrame, *, drop: bool) -> pd.DataFrame:
    """``frame`` without the columns of fields spread from JSON values (and ``value_error``)
    when ``drop``: a reading that starts again from the stored values."""
    if not drop:
        return frame
    fields = [c for c in frame.columns if c not in _RECORD_COLUMNS]
    return frame.drop(columns=[*fields, "value_error"], errors="ignore")


def with_formats(frame: pd.DataFrame, *, key_format: str, value_format: str, raw: bool) -> pd.DataFrame:
    """``frame`` (a replay read with ``raw=True`` when ``value_format`` is in RAW_FORMATS)
    with keys and values read as asked:

    - ``"auto"``: as stored (JSON objects spread into fields, see ``model.views``);
    - ``"json"``: objects spread as with "auto", and every other value or key parsed as
      JSON too (``b"[1, 2]"`` → ``[1, 2]``); a value that does not parse keeps its raw
      value and ``value_error`` says "not JSON" (a key that does not parse stays as it is);
    - ``"string"``: the stored bytes as text (JSON as its text, no field columns); a value
      that is not UTF-8 stays bytes and ``value_error`` says "not UTF-8";
    - ``"bytes"``: the stored bytes (no field columns).
    """
    if key_format != "auto" and "key" in frame.columns:
        frame["key"] = pd.Series([read_cell(k, key_format)[0] for k in frame["key"]], index=frame.index, dtype=object)
    if value_format == "auto" or "value" not in frame.columns:
        return frame
    frame = spread_fields(frame, drop=value_format in RAW_FORMATS)
    cells = [read_cell(v, value_format) for v in frame["value"]]
    frame["value"] = pd.Series([c for c, _ in cells], index=frame.index, dtype=object)
    # every value not spread into fields was read again: its error (if any) is the one now
    errors = pd.Series([e for _, e in cells], index=frame.index, dtype="string")
    if errors.notna().any():
        frame["value_error"] = errors.astype("string")
    else:
        frame = frame.drop(columns="value_error", errors="ignore")
    if value_format == "string" and frame["value"].map(lambda v: v is None or isinstance(v, str)).all():
        frame["value"] = frame["value"].astype(pd.StringDtype("pyarrow"))
    if value_format == "json" and not raw and frame["value"].isna().all():
        frame = frame.drop(columns="value")
    return frame


def read_cell(cell: Any, fmt: str) -> tuple[Any, str | None]:
    """One key or value (as replay decoded it) read as ``fmt``: (cell, error or None)."""
    if cell is None or cell is pd.NA:
        return None, None
    if fmt == "bytes":
        if isinstance(cell, bytes):
            return cell, None
        return (cell.encode() if isinstance(cell, str) else dumps_value(cell)), None
    if fmt == "string":
        if isinstance(cell, bytes):
            try:
                return cell.decode(), None
            except UnicodeDecodeError:
                return cell, "not UTF-8"
        return (cell if isinstance(cell, str) else dumps_value(cell).decode()), None
    if isinstance(cell, bytes | str):  # json
        try:
            return loads(cell), None
        except JSONDecodeError:
            return cell, "not JSON"
    return cell, None
