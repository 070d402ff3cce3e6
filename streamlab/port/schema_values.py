"""Producing in Confluent's wire format: what both producers (embedded and ``kafka://``)
share for ``send(..., value_format="avro", value_schema=...)`` and ``send_many(df,
value_format="avro" | "jsonschema" | "protobuf")``.

The schema is registered under the topic's subject (TopicNameStrategy: ``<topic>-value``,
``<topic>-key``) in the lab's Schema Registry, so the subject's compatibility level decides
whether it may evolve (an incompatible schema raises
:class:`~streamlab.errors.IncompatibleSchemaError` before anything is sent); each value is
then written as magic byte 0, the schema id, and the payload encoded by
:class:`~streamlab.model.schemas.wire.ConfluentCodec` (fastavro; JSON validated by
jsonschema; Protobuf through a message class built from the schema's descriptor, after the
message indexes), as confluent-kafka's AvroSerializer, JSONSerializer and
ProtobufSerializer write them. Such
records are stored as bytes; ``replay`` decodes them through the registry.

Without ``value_schema``: ``send`` uses the subject's latest registered version, and
``send_many`` derives one from the DataFrame's dtypes (:mod:`streamlab.model.schemas.derive`).
A Protobuf schema is .proto text (or a ``lab.schemas`` Schema); a value is a dict of its
first message's fields (datetimes for Timestamps), and so is a key.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.errors import (
    ConfigError,
    IncompatibleSchemaError,
    SerializationError,
    SubjectNotFoundError,
    UnsupportedOperationError,
)
from streamlab.model.frames import FrameRows, frame_rows
from streamlab.model.schemas.derive import (
    avro_schema_for,
    avro_type_for,
    json_schema_for,
    json_type_for,
    proto_schema_for,
    python_column,
    python_records,
    record_name,
)
from streamlab.model.schemas.types import Schema, SchemaType
from streamlab.model.schemas.wire import ConfluentCodec, frame
from streamlab.model.serde import FMT_BYTES
from streamlab.port.schemas import SchemaRegistryPort

RegistryFormat = Literal["avro", "jsonschema", "protobuf"]
SchemaArg = str | Mapping[str, Any] | list[Any] | Schema | None
_TYPES: dict[str, SchemaType] = {"avro": "AVRO", "jsonschema": "JSON", "protobuf": "PROTOBUF"}


def registry_format(fmt: str | None, which: str) -> RegistryFormat | None:
    """The registry format asked for (None: streamlab's own serialisation)."""
    if fmt is None or fmt == "auto":
        return None
    if fmt == "avro":
        return "avro"
    if fmt == "jsonschema":
        return "jsonschema"
    if fmt == "protobuf":
        return "protobuf"
    raise ConfigError(f"{which} must be None, 'auto', 'avro', 'jsonschema' or 'protobuf', got {fmt!r}")


def _schema(schema: SchemaArg, fmt: RegistryFormat) -> Schema | None:
    if schema is None:
        return None
    kind = _TYPES[fmt]
    if isinstance(schema, Schema):
        if schema.schema_type != kind:
            raise ConfigError(f"a {schema.schema_type} schema cannot encode format {fmt!r}")
        return schema
    if isinstance(schema, str):
        return Schema(schema, kind)
    if isinstance(schema, Mapping | list) and fmt != "protobuf":
        return Schema(json.dumps(schema), kind)
    raise ConfigError(
        f"a {fmt} schema is its text (str), a dict (not for Protobuf: .proto text), or a "
        f"lab.schemas Schema; got {type(schema).__name__}"
    )


class RegistryEncoder:
    """One per producer: registers schemas (once per subject and schema) and encodes values."""

    def __init__(self, registry: Callable[[], SchemaRegistryPort]) -> None:
        self._registry_of = registry
        self._port: SchemaRegistryPort | None = None
        self._codec: ConfluentCodec | None = None
        self._ids: dict[tuple[str, Schema], int] = {}
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()

    def _registry(self) -> tuple[SchemaRegistryPort, ConfluentCodec]:
        if self._port is None or self._codec is None:
            try:
                port = self._registry_of()
            except UnsupportedOperationError as exc:
                raise ConfigError(
                    f"producing Avro, JSON Schema or Protobuf registers the schema in a Schema Registry: {exc}"
                ) from None
            self._codec = ConfluentCodec(port.schema, port.resolve)
            self._port = port
        return self._port, self._codec

    def schema_id(self, topic: str, which: Literal["key", "value"], fmt: RegistryFormat, schema: SchemaArg) -> int:
        """The id of ``schema`` registered under ``<topic>-<which>`` (the subject's latest
        version when ``schema`` is None)."""
        subject = f"{topic}-{which}"
        wanted = _schema(schema, fmt)
        with self._lock:
            port, _ = self._registry()
            if wanted is None:
                found = self._latest.get(subject)
                if found is None:
                    try:
                        latest = port.version(subject, "latest")
                    except SubjectNotFoundError:
                        raise ConfigError(f"subject {subject!r} has no schema yet: pass {which}_schema=") from None
                    if latest.schema.schema_type != _TYPES[fmt]:
                        raise ConfigError(f"subject {subject!r} holds a {latest.schema.schema_type} schema, not {fmt}")
                    found = self._latest[subject] = latest.id
                return found
            key = (subject, wanted)
            found = self._ids.get(key)
            if found is None:
                try:
                    found = self._ids[key] = port.register(subject, wanted).id
                except IncompatibleSchemaError as exc:
                    raise IncompatibleSchemaError(
                        f"the {which} schema of topic {topic!r} cannot be registered under {subject!r}: {exc}. "
                        "Evolve it compatibly (add fields with defaults, make fields nullable), or change the "
                        f"subject's level: lab.schemas.set_compatibility('NONE', {subject!r}); nothing was sent"
                    ) from None
            return found

    def encode(self, value: Any, schema_id: int) -> bytes | None:
        """``value`` framed under ``schema_id``; None stays a null value (a tombstone)."""
        if value is None:
            return None
        _, codec = self._registry()
        return codec.encode(value, schema_id)  # SchemaDecodeError (a SerializationError) if it does not fit

    def frame_values(
        self, topic: str, df: pd.DataFrame, columns: list[Any], fmt: RegistryFormat, schema: SchemaArg
    ) -> pa.Array:
        """Each row of ``df[columns]`` as one framed record value (binary), under ``schema``
        or one derived from the dtypes."""
        derived = schema is None
        if schema is None:
            name = record_name(topic, "value")
            if fmt == "avro":
                schema = avro_schema_for(df, columns, name)
            elif fmt == "jsonschema":
                schema = json_schema_for(df, columns, name)
            else:
                schema = proto_schema_for(df, columns, name)
        sid = self.schema_id(topic, "value", fmt, schema)
        rows = python_records(df, columns, iso_times=fmt == "jsonschema")
        if derived and fmt == "jsonschema":
            # Rows fit the schema derived from their own dtypes by construction: validating
            # each one with jsonschema (~100 µs a row) would only cost time.
            return pa.array([frame(sid, orjson.dumps(row)) for row in rows], pa.binary())
        return pa.array(self._encode_all(rows, sid, "row"), pa.binary())

    def frame_keys(self, topic: str, column: pd.Series, fmt: RegistryFormat, schema: SchemaArg) -> list[bytes | None]:
        """Each key of ``column`` framed (a null key stays null)."""
        keys = python_column(column, iso_times=fmt == "jsonschema")
        if fmt == "protobuf":  # a Protobuf key is a message: of one field, named after the column
            if schema is None:
                schema = proto_schema_for(column.to_frame(), [column.name], record_name(topic, "key"))
            keys = [None if k is None else {column.name: k} for k in keys]
        elif schema is None:
            schema = avro_type_for(column, column.name) if fmt == "avro" else json_type_for(column, column.name)
        sid = self.schema_id(topic, "key", fmt, schema)
        return self._encode_all(keys, sid, "key")

    def _encode_all(self, values: list[Any], sid: int, what: str) -> list[bytes | None]:
        _, codec = self._registry()
        out: list[bytes | None] = []
        for i, value in enumerate(values):
            if value is None and what == "key":
                out.append(None)
                continue
            try:
                out.append(codec.encode(value, sid))
            except SerializationError as exc:
                raise SerializationError(f"{what} {i}: {exc}; nothing was sent") from None
        return out


class ProducerFormats:
    """The part of ``send``/``send_many`` for ``key_format``/``value_format``: both
    producers call it, so the embedded and ``kafka://`` ones write the same bytes."""

    def __init__(self, registry: Callable[[], SchemaRegistryPort]) -> None:
        self.encoder = RegistryEncoder(registry)

    def record(
        self, topic: str, key: Any, value: Any, *,
        key_format: str | None, key_schema: SchemaArg, value_format: str | None, value_schema: SchemaArg,
    ) -> tuple[Any, Any]:  # fmt: skip
        """``key`` and ``value``, framed (bytes) where a registry format is asked for."""
        kf, vf = registry_format(key_format, "key_format"), registry_format(value_format, "value_format")
        if kf is not None and key is not None:
            key = self.encoder.encode(key, self.encoder.schema_id(topic, "key", kf, key_schema))
        if vf is not None and value is not None:
            value = self.encoder.encode(value, self.encoder.schema_id(topic, "value", vf, value_schema))
        return key, value

    def frame_rows(
        self, topic: str, df: pd.DataFrame, *, key: str | None, timestamp: str | None,
        value_format: str | None, value_schema: SchemaArg,
    ) -> FrameRows:  # fmt: skip
        """:func:`~streamlab.model.frames.frame_rows`, the values framed when asked."""
        fmt = registry_format(value_format, "value_format")
        named = [c for c in (key, timestamp) if c is not None]
        if fmt is None or not isinstance(df, pd.DataFrame) or any(c not in df.columns for c in named):
            return frame_rows(df, key=key, timestamp=timestamp)  # as ever (or its error)
        rows = frame_rows(df[named], key=key, timestamp=timestamp)
        columns = [c for c in df.columns if c not in named]
        if not columns:
            return rows
        values = self.encoder.frame_values(topic, df, columns, fmt, value_schema)
        largest = int(pc.max(pc.binary_length(values)).as_py() or 0) if len(values) else 0
        return dataclasses.replace(rows, values=values, largest=largest, value_format=FMT_BYTES)

    def key_column(self, topic: str, column: pd.Series, key_format: str | None, key_schema: SchemaArg) -> pd.Series:
        """The key column, framed (bytes) when a registry format is asked for."""
        fmt = registry_format(key_format, "key_format")
        if fmt is None:
            return column
        return pd.Series(self.encoder.frame_keys(topic, column, fmt, key_schema), index=column.index, dtype=object)
