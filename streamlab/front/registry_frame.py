"""Values in Confluent's wire format, decoded in a replayed DataFrame through the lab's
Schema Registry (``lab.schemas``).

Applied to what :func:`streamlab.model.dataframes.replay_dataframe` built: rows whose
``value`` is Confluent-framed (magic byte 0, a 4-byte schema id) are decoded (Avro with
fastavro, JSON Schema as JSON, Protobuf by its JSON mapping); a record's fields become
columns, nested records flattened into dotted names (``ship_to.city``), typed as pandas
infers them from the decoded values (Avro long → Int64, double → float64, string →
string, logical timestamps → tz-aware datetimes). A decoded row's ``value`` is cleared
(kept with ``raw=True``); a row that does not decode (unknown schema id, bad bytes) keeps
its ``value`` and says why in ``value_error``. Frames without framed values are returned as
they are, and nothing touches the registry then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from streamlab.errors import StreamlabError
from streamlab.model.schemas.wire import is_confluent
from streamlab.model.types import Record

KEY, VALUE, ERROR = "key", "value", "value_error"


def _framed(value: Any) -> bool:
    return isinstance(value, bytes) and is_confluent(value)


def _framed_rows(column: pd.Series) -> pd.Series:
    """Which cells of ``column`` are Confluent-framed bytes. Only an object column can hold
    bytes: a text or numeric one (every key streamlab decoded) is not looked at row by row."""
    if column.dtype != object:
        return pd.Series(False, index=column.index)
    return column.map(_framed).astype(bool)


def _nullable(column: pd.Series) -> pd.Series:
    """A column that keeps its type when rows without it become NA: ints as Int64, bools as
    boolean, text as string (floats and datetimes have NaN/NaT already)."""
    kind = column.dtype.kind
    if kind in "iu":
        return column.astype("Int64")
    if kind == "b":
        return column.astype("boolean")
    if kind == "O" and column.map(lambda v: v is None or isinstance(v, str)).all():
        return column.astype("string")
    if kind == "O" and column.map(lambda v: v is None or isinstance(v, bool) or v != v).all():
        return column.astype("boolean")  # Avro ["null", "boolean"]: pandas left it object
    return column


def _ints(column: pd.Series, records: Iterable[dict[str, Any]], name: str) -> pd.Series:
    """An integer field with nulls (Avro ``["null", "long"]``) as Int64: pandas made it
    float64 with NaN, which would turn large ids inexact."""
    if column.dtype.kind != "f" or not column.isna().any():
        return column
    values = [_field(r, name) for r in records]
    if all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
        return pd.Series(pd.array(values, dtype="Int64"), index=column.index)
    return column


def _field(record: Any, name: str) -> Any:
    if name in record:
        return record[name]
    head, _, rest = name.partition(".")  # json_normalize's dotted names of nested records
    inner = record.get(head) if isinstance(record, dict) else None
    return _field(inner, rest) if isinstance(inner, dict) and rest else None


def _decode_keys(frame: pd.DataFrame, decode: Callable[[], Callable[[bytes], Any] | None]) -> pd.DataFrame:
    if KEY not in frame.columns or frame.empty:
        return frame
    mask = _framed_rows(frame[KEY])
    if not mask.any():
        return frame
    decoder = decode()
    if decoder is None:
        return frame
    keys = frame[KEY].astype(object)
    for index, payload in frame.loc[mask, KEY].items():
        try:
            keys.at[index] = decoder(payload)
        except StreamlabError:
            continue
    out = frame.copy()
    out[KEY] = _nullable(keys)
    return out


def decode_registry_values(
    frame: pd.DataFrame, decode: Callable[[], Callable[[bytes], Any] | None], *, raw: bool = False
) -> pd.DataFrame:
    """``frame`` with its Confluent-framed values decoded by ``decode()`` (called only when
    there are any; None: no registry, the frame stays as it is). Framed keys are decoded in
    place (``raw=True`` keeps their bytes); a key that does not decode stays as it is."""
    if not raw:
        frame = _decode_keys(frame, decode)
    if VALUE not in frame.columns or frame.empty:
        return frame
    mask = _framed_rows(frame[VALUE])
    if not mask.any():
        return frame
    decoder = decode()
    if decoder is None:
        return frame
    records: dict[Any, dict[str, Any]] = {}
    scalars: dict[Any, Any] = {}
    errors: dict[Any, str] = {}
    for index, payload in frame.loc[mask, VALUE].items():
        try:
            value = decoder(payload)
        except StreamlabError as exc:
            errors[index] = str(exc)
            continue
        if isinstance(value, dict):
            records[index] = value
        else:
            scalars[index] = value
    out = frame.copy()
    decoded = pd.Index(list(records) + list(scalars))
    if records:
        fields = pd.json_normalize(list(records.values()))
        fields.index = pd.Index(list(records))
        position = list(out.columns).index(VALUE)  # new field columns go before value
        for name in fields.columns:
            column = _nullable(_ints(fields[name], records.values(), name)).reindex(out.index)
            if name in out.columns:
                out[name] = column.combine_first(out[name])
            else:
                out.insert(position, name, column)
                position += 1
    out[VALUE] = out[VALUE].astype(object)
    for index, value in scalars.items():
        out.at[index, VALUE] = value
    if not raw:
        out.loc[out.index.isin(list(records)), VALUE] = None
    if ERROR in out.columns or errors:
        error = out[ERROR].astype("string") if ERROR in out.columns else pd.Series(pd.NA, out.index, dtype="string")
        error = error.mask(error.index.isin(decoded))
        if errors:
            error = pd.Series(errors, dtype="string").combine_first(error).astype("string")
        out[ERROR] = error
        if error.isna().all():
            out = out.drop(columns=ERROR)
    if not raw and out[VALUE].isna().all():
        out = out.drop(columns=VALUE)
    return out


class RegistryDecoder:
    """What ``Lab.consumer`` hands its consumer (:class:`streamlab.port.record_decode.RecordDecoder`):
    ``poll()``'s Confluent-framed keys and values decoded through the lab's registry (Avro
    records as dicts, logical timestamps as datetimes), ``poll_frame()``'s values as replay
    decodes them. A record that does not decode (an unknown schema id, bytes that only
    start like a framed payload) keeps its bytes; the registry is looked up on the first
    framed record, so topics without any never touch it."""

    def __init__(self, decode: Callable[[], Callable[[bytes], Any] | None]) -> None:
        self._factory = decode
        self._decoder: list[Callable[[bytes], Any] | None] = []  # made once, on first use
        self._lock = threading.Lock()

    def _decode(self) -> Callable[[bytes], Any] | None:
        with self._lock:
            if not self._decoder:
                try:
                    self._decoder.append(self._factory())
                except (StreamlabError, ModuleNotFoundError):  # a closed lab; the registry extra missing
                    self._decoder.append(None)
            return self._decoder[0]

    def _one(self, data: Any) -> Any:
        if not _framed(data):
            return data
        decoder = self._decode()
        if decoder is None:
            return data
        try:
            return decoder(data)
        except StreamlabError:
            return data

    def records(self, records: list[Record]) -> list[Record]:
        out = records
        for i, record in enumerate(records):
            key, value = self._one(record.key), self._one(record.value)
            if key is not record.key or value is not record.value:
                if out is records:
                    out = list(records)
                out[i] = record._replace(key=key, value=value)
        return out

    def frame(self, frame: pd.DataFrame, *, raw: bool) -> pd.DataFrame:
        return decode_registry_values(frame, self._decode, raw=raw)
