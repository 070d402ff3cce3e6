"""Avro, JSON Schema and Protobuf derived from a DataFrame's dtypes, for ``send_many(df,
value_format="avro" | "jsonschema" | "protobuf")`` without a schema, and the rows as the
plain Python values the codecs (fastavro, jsonschema, protobuf) take. No I/O.

How a column's type is chosen, from its dtype alone (never from the rows of one batch, so
every batch of the same frame shape derives the same schema and registers no new version):

====================================  ===============================  =========================
dtype                                 Avro                             JSON Schema
====================================  ===============================  =========================
int8..int64, uint8..uint32            ``long``                         ``integer``
``Int64`` (and the other nullable)    ``["null", "long"]``             ``["integer", "null"]``
float32/float64 (NaN is a double)     ``double``                       ``["number", "null"]``
``Float64``                           ``["null", "double"]``           ``["number", "null"]``
bool / ``boolean``                    ``boolean`` / ``["null", ...]``  ``boolean`` / nullable
str, ``string``, category, object     ``["null", "string"]``           ``["string", "null"]``
  of str
datetime64 (naive taken as UTC)       ``["null", {"type": "long",      ``["string", "null"]``,
                                      "logicalType":                   ``"format": "date-time"``
                                      "timestamp-millis"}]``           (ISO text, UTC)
====================================  ===============================  =========================

Nullability follows the dtype: a column whose dtype can hold NA (the nullable extension
dtypes, strings, categoricals, datetimes) is a union with ``"null"`` first and
``"default": null``; numpy ints and bools cannot hold NA and are required. JSON NaN is null,
so float columns are nullable in JSON Schema. Other dtypes (timedelta, bytes, mixed object
columns) are refused with a :class:`~streamlab.errors.SerializationError` naming the
column: pass a schema instead.

Protobuf: a proto3 file, package ``streamlab``, with one message (named as the Avro record)
and one field per column, numbered 1, 2, ... in column order: ints → ``int64``, floats →
``double``, bools → ``bool``, str/categoricals → ``string``, datetimes →
``google.protobuf.Timestamp`` (unset for NaT). A scalar column whose dtype can hold NA is
an ``optional`` field, so NA is "not set" and replays as NA (a plain proto3 scalar cannot
tell unset from 0 or ""); a numpy float column's NaN is a double NaN. Because numbers follow column order, a
frame whose columns come in another order derives an incompatible schema: keep the order,
or pass one. A key column derives a message of one field named after the column.

Names: the Avro record is named after the topic and what it holds (``clicks`` value →
``clicks_value``; characters outside ``[A-Za-z0-9_]`` become ``_``, a leading digit gets a
``_``) in namespace ``streamlab``; its fields are the column names, which must be valid
Avro names. The JSON Schema's ``title`` is the same name.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd

from streamlab.errors import SerializationError

NAMESPACE = "streamlab"
_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TIMESTAMP_MILLIS = {"type": "long", "logicalType": "timestamp-millis"}


def record_name(topic: str, what: str) -> str:
    """``topic``'s name made a valid Avro name, with ``_value`` or ``_key``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", topic)
    if not name or name[0].isdigit():
        name = "_" + name
    return f"{name}_{what}"


def _kind(column: pd.Series, name: Any) -> tuple[str, bool]:
    """(``"long"``/``"double"``/``"boolean"``/``"string"``/``"timestamp"``, nullable)."""
    dtype = column.dtype
    extension = isinstance(dtype, pd.api.extensions.ExtensionDtype)
    if isinstance(dtype, pd.CategoricalDtype):
        inner, _ = _kind(pd.Series(dtype.categories), name)
        if inner != "string":
            raise SerializationError(f"column {name!r}: categories of {dtype.categories.dtype} are not supported; "
                                     "categories of str are, or pass a schema")  # fmt: skip
        return "string", True
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean", extension
    if pd.api.types.is_integer_dtype(dtype):
        if dtype == np.uint64 or str(dtype) == "UInt64":
            raise SerializationError(f"column {name!r}: uint64 does not fit Avro's long; cast it to int64")
        return "long", extension
    if pd.api.types.is_float_dtype(dtype):
        return "double", extension
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp", True
    if pd.api.types.is_string_dtype(dtype):
        inferred = pd.api.types.infer_dtype(column, skipna=True)
        if inferred in ("string", "empty"):
            return "string", True
    raise SerializationError(
        f"column {name!r} of dtype {dtype} has no derived schema type (ints, floats, bools, str, "
        "categoricals of str and datetimes do); convert it, or pass a schema"
    )


def _check_names(columns: list[Any]) -> None:
    for name in columns:
        if not isinstance(name, str) or not _AVRO_NAME.fullmatch(name):
            raise SerializationError(
                f"column {name!r} is not a valid Avro field name ([A-Za-z_][A-Za-z0-9_]*): rename it, or pass a schema"
            )


def _avro_type(kind: str) -> Any:
    return _TIMESTAMP_MILLIS if kind == "timestamp" else kind


def avro_schema_for(df: pd.DataFrame, columns: list[Any], name: str) -> dict[str, Any]:
    """An Avro record schema for ``df[columns]`` (see the module's table)."""
    _check_names(columns)
    fields: list[dict[str, Any]] = []
    for column in columns:
        kind, nullable = _kind(df[column], column)
        if nullable:
            fields.append({"name": column, "type": ["null", _avro_type(kind)], "default": None})
        else:
            fields.append({"name": column, "type": _avro_type(kind)})
    return {"type": "record", "name": name, "namespace": NAMESPACE, "fields": fields}


def avro_type_for(column: pd.Series, name: Any) -> Any:
    """The Avro type of one column's values (keys: a primitive, not a record)."""
    kind, nullable = _kind(column, name)
    return ["null", _avro_type(kind)] if nullable else _avro_type(kind)


_JSON_TYPES = {"long": "integer", "double": "number", "boolean": "boolean", "string": "string",
               "timestamp": "string"}  # fmt: skip


def _json_property(kind: str, nullable: bool) -> dict[str, Any]:
    base = _JSON_TYPES[kind]
    prop: dict[str, Any] = {"type": [base, "null"] if nullable or kind == "double" else base}
    if kind == "timestamp":
        prop["format"] = "date-time"
    return prop


def json_schema_for(df: pd.DataFrame, columns: list[Any], name: str) -> dict[str, Any]:
    """A JSON Schema (draft 7) object schema for ``df[columns]``; required: the columns
    that cannot be null."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for column in columns:
        if not isinstance(column, str):
            raise SerializationError(f"column {column!r}: JSON object keys are str; rename it, or pass a schema")
        kind, nullable = _kind(df[column], column)
        properties[column] = _json_property(kind, nullable)
        if not nullable and kind != "double":
            required.append(column)
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": name, "type": "object",
            "properties": properties, "required": required, "additionalProperties": False}  # fmt: skip


def json_type_for(column: pd.Series, name: Any) -> dict[str, Any]:
    kind, nullable = _kind(column, name)
    return {"$schema": "http://json-schema.org/draft-07/schema#", **_json_property(kind, nullable)}


_PROTO_TYPES = {"long": "int64", "double": "double", "boolean": "bool", "string": "string",
                "timestamp": "google.protobuf.Timestamp"}  # fmt: skip


def proto_schema_for(df: pd.DataFrame, columns: list[Any], name: str) -> str:
    """A proto3 file (.proto text) whose one message has a field per column of ``df[columns]``."""
    _check_names(columns)
    lines: list[str] = []
    for number, column in enumerate(columns, start=1):
        kind, nullable = _kind(df[column], column)
        optional = "optional " if nullable and kind != "timestamp" else ""  # a Timestamp has presence
        lines.append(f"  {optional}{_PROTO_TYPES[kind]} {column} = {number};")
    imports = 'import "google/protobuf/timestamp.proto";\n' if any("Timestamp" in line for line in lines) else ""
    body = "\n".join(lines)
    return f'syntax = "proto3";\npackage {NAMESPACE};\n{imports}\nmessage {name} {{\n{body}\n}}\n'


def python_column(column: pd.Series, *, iso_times: bool) -> list[Any]:
    """A column's cells as plain Python values: NA/NaT as None, numpy scalars as int,
    float and bool, datetimes as tz-aware UTC datetimes (or their ISO text when
    ``iso_times``, for JSON). Float NaN stays NaN for Avro (a double holds it) and is None
    for JSON."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        column = column.astype(object)
        dtype = column.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        times = column.dt.tz_localize("UTC") if column.dt.tz is None else column.dt.tz_convert("UTC")
        if iso_times:
            text = times.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return [None if pd.isna(t) else t for t in text.tolist()]
        return [None if pd.isna(t) else t.to_pydatetime().astimezone(UTC) for t in times.tolist()]
    if pd.api.types.is_float_dtype(dtype) and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
        values = column.tolist()
        return [None if v != v else v for v in values] if iso_times else values
    mask = column.isna().to_numpy()
    values = column.astype(object).tolist()
    if mask.any():
        values = [None if m else v for v, m in zip(values, mask, strict=True)]
    return values


def python_records(df: pd.DataFrame, columns: list[Any], *, iso_times: bool) -> list[dict[str, Any]]:
    """``df[columns]``'s rows as dicts of plain Python values (see :func:`python_column`)."""
    cells = [python_column(df[c], iso_times=iso_times) for c in columns]
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*cells, strict=True)] if cells else [{}] * len(df)
