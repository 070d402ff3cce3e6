"""Values in Confluent's wire format, decoded in a replayed DataFrame through the lab's
Schema Registry (``lab.schemas``).

Applied to what :func:`streamlab.model.dataframes.replay_dataframe` built: rows whose
``value`` is Confluent-framed (magic byte 0, a 4-byte schema id) are decoded (Avro with
fastavro, JSON Schema as JSON, Protobuf from its descriptor); a record's fields become
columns, nested records flattened into dotted names (``ship_to.city``). Avro's columns
are typed from the schema, each schema id's payloads decoded together
(:mod:`streamlab.model.schemas.avro_columns`); JSON Schema's and Protobuf's (values from
:mod:`streamlab.model.schemas.proto_values`) as pandas infers them, integers as Int64,
booleans as boolean, text as string. A decoded row's ``value`` is cleared
(kept with ``raw=True``); a row that does not decode (unknown schema id, bad bytes) keeps
its ``value`` and says why in ``value_error``. Frames without framed values are returned as
they are, and nothing touches the registry then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from streamlab.errors import StreamlabError
from streamlab.model.schemas.wire import HEADER, MAGIC_BYTE, ConfluentCodec, is_confluent

KEY, VALUE, ERROR = "key", "value", "value_error"


def _framed(value: Any) -> bool:
    return isinstance(value, bytes) and is_confluent(value)


def _framed_rows(column: pd.Series, select: Callable[[Any], bool] = _framed) -> pd.Series:
    """Which cells of ``column`` ``select`` picks (default: Confluent-framed bytes). Only an
    object column can hold bytes: a text or numeric one (every key streamlab decoded) is not
    looked at row by row."""
    if column.dtype != object:
        return pd.Series(False, index=column.index)
    if select is _framed:  # inline: a function call per cell cost more than the test itself
        framed = [type(v) is bytes and len(v) >= HEADER.size and v[0] == MAGIC_BYTE for v in column.tolist()]
        return pd.Series(framed, index=column.index, dtype=bool)
    return column.map(select).astype(bool)


def _nullable(column: pd.Series) -> pd.Series:
    """A column that keeps its type when rows without it become NA: ints as Int64, bools as
    boolean, text as string (floats and datetimes have NaN/NaT already)."""
    kind = column.dtype.kind
    if kind in "iu":
        return column.astype("UInt64" if kind == "u" else "Int64")  # uint64 past int64 (Protobuf's)
    if kind == "b":
        return column.astype("boolean")
    if kind == "O" and column.map(lambda v: v is None or isinstance(v, str) or v != v).all():
        return column.astype("string")  # NaN: a field the record's (older) schema did not have
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


def _inferred(records: dict[Any, dict[str, Any]]) -> pd.DataFrame:
    """Columns of records decoded as dicts (JSON Schema, Protobuf), typed as pandas infers them."""
    fields = pd.json_normalize(list(records.values()))
    fields.index = pd.Index(list(records))
    for name in fields.columns:
        fields[name] = _nullable(_ints(fields[name], records.values(), name))
    return fields


def decode_registry_keys(frame: pd.DataFrame, decode: Callable[[], Callable[[Any], Any] | None]) -> pd.DataFrame:
    """``frame`` with its Confluent-framed keys decoded (a key that does not decode stays as it is)."""
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
    frame: pd.DataFrame,
    decode: Callable[[], Callable[[Any], Any] | None],
    *,
    raw: bool = False,
    keys: bool | None = None,
    select: Callable[[Any], bool] = _framed,
) -> pd.DataFrame:
    """``frame`` with its Confluent-framed values (those ``select`` picks) decoded by
    ``decode()`` (called only when there are any; None: no registry, the frame stays as it
    is). Framed keys are decoded in place when ``keys`` (default: unless ``raw``); a key that
    does not decode stays as it is."""
    if keys if keys is not None else not raw:
        frame = decode_registry_keys(frame, decode)
    if VALUE not in frame.columns or frame.empty:
        return frame
    mask = _framed_rows(frame[VALUE], select)
    if not mask.any():
        return frame
    decoder = decode()
    if decoder is None:
        return frame
    labels = frame.index[mask.to_numpy()]
    if isinstance(decoder, ConfluentCodec):  # the lab's registry: each schema id's payloads at once
        rows = decoder.decode_rows(frame.loc[mask, VALUE].tolist())
        fields = [part.set_axis(labels.take(part.index.to_numpy())) for part in rows.fields]
        records = {labels[p]: r for p, r in rows.records.items()}
        scalars = {labels[p]: v for p, v in rows.scalars.items()}
        errors = {labels[p]: e for p, e in rows.errors.items()}
    else:
        fields, records, scalars, errors = [], {}, {}, {}
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
    if records:
        fields.append(_inferred(records))
    out = frame.copy()
    decoded = labels[~labels.isin(list(errors))]
    if fields:
        typed = fields[0] if len(fields) == 1 else pd.concat(fields)  # schema versions: columns united
        position = list(out.columns).index(VALUE)  # new field columns go before value
        for name in typed.columns:
            column = typed[name].reindex(out.index)
            if name in out.columns:
                out[name] = column.combine_first(out[name])
            else:
                out.insert(position, name, column)
                position += 1
    out[VALUE] = out[VALUE].astype(object)
    for index, value in scalars.items():
        out.at[index, VALUE] = value
    if not raw:
        out.loc[out.index.isin(decoded) & ~out.index.isin(list(scalars)), VALUE] = None
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
