"""Confluent's wire format: magic byte 0, the schema id as 4 big-endian bytes, then the
payload (Avro binary, JSON text, or Protobuf message indexes and message bytes).

Avro goes through fastavro (``schemaless_reader``/``schemaless_writer``), JSON Schema
through ``jsonschema`` (encoding validates, decoding parses), Protobuf through the
``protobuf`` package, from the base64 FileDescriptorProto confluent-kafka registers or from
.proto text (:mod:`streamlab.model.schemas.proto`): the message class is built at runtime
from the descriptor (no generated code), encoding fills it from a dict with protobuf's JSON
mapping (datetimes into Timestamps) and frames it as confluent-kafka's ProtobufSerializer
does, always as the schema's first message (message indexes ``[0]``, the single byte 0).
Decoded values are plain Python:
Avro records as dicts (logical types as fastavro gives them: timestamps as tz-aware
datetimes, decimals as Decimal), Protobuf messages as dicts of real Python values
(:mod:`streamlab.model.schemas.proto_values`: int64 as int, Timestamps as datetimes).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from streamlab.errors import InvalidSchemaError, SchemaDecodeError, StreamlabError
from streamlab.model.schemas.avro_columns import AvroColumns
from streamlab.model.schemas.parse import Resolve, fastavro_schema, json_schema
from streamlab.model.schemas.types import Schema, SchemaReference

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")  # magic byte, schema id
SchemaLookup = Callable[[int], Schema]  # a schema id's schema (raises SchemaNotFoundError)


def is_confluent(data: bytes | None) -> bool:
    """Whether ``data`` starts like a Confluent-framed payload (magic byte 0 and an id)."""
    return data is not None and len(data) >= HEADER.size and data[0] == MAGIC_BYTE


def schema_id(data: bytes) -> int:
    """The schema id of a Confluent-framed payload."""
    if not is_confluent(data):
        raise SchemaDecodeError("not in Confluent's wire format (magic byte 0 and a 4-byte schema id)")
    return int(HEADER.unpack_from(data)[1])


def frame(schema_id: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC_BYTE, schema_id) + payload


def _no_references(ref: SchemaReference) -> Schema:
    raise SchemaDecodeError(f"the schema references {ref.name} ({ref.subject} v{ref.version}); pass resolve=")


@dataclass(slots=True)
class DecodedRows:
    """Many Confluent-framed payloads decoded (:meth:`ConfluentCodec.decode_rows`), by
    their position in the list given: ``fields`` are typed columns of the records of the
    schemas whose columns follow from the schema (Avro), one frame per schema id;
    ``records`` the records of the others, as dicts; ``scalars`` values that are no record;
    ``errors`` why a payload did not decode."""

    fields: list[pd.DataFrame] = field(default_factory=list)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    scalars: dict[int, Any] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


class ConfluentCodec:
    """Decodes and encodes Confluent-framed payloads, parsing each schema id's schema once.
    Called with a payload, it decodes it (:meth:`decode`)."""

    def __init__(self, lookup: SchemaLookup, resolve: Resolve | None = None) -> None:
        self._lookup = lookup
        self._resolve = resolve or _no_references
        self._parsed: dict[int, tuple[Schema, Any]] = {}
        self._validators: dict[int, Any] = {}  # JSON Schema validators by schema id
        self._columns: dict[int, AvroColumns] = {}  # Avro schemas' column builders by schema id

    def _schema(self, sid: int) -> tuple[Schema, Any]:
        cached = self._parsed.get(sid)
        if cached is None:
            schema = self._lookup(sid)
            parsed: Any
            if schema.schema_type == "AVRO":
                parsed = fastavro_schema(schema, self._resolve)
            elif schema.schema_type == "JSON":
                parsed = json_schema(schema)
            else:
                parsed = _protobuf_pool(schema, self._resolve)
            cached = self._parsed[sid] = (schema, parsed)
        return cached

    def decode(self, data: bytes) -> Any:
        """The value in a Confluent-framed payload. Raises SchemaDecodeError (or
        SchemaNotFoundError for an unknown id)."""
        sid = schema_id(data)
        schema, parsed = self._schema(sid)
        body = memoryview(data)[HEADER.size :]
        try:
            if schema.schema_type == "AVRO":
                import fastavro

                return fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
            if schema.schema_type == "JSON":
                return orjson.loads(body)
            return _decode_protobuf(bytes(body), parsed)
        except SchemaDecodeError:
            raise
        except Exception as exc:  # fastavro: EOFError, ValueError...; orjson: JSONDecodeError
            raise SchemaDecodeError(
                f"payload of schema id {sid} does not decode as {schema.schema_type}: {exc}"
            ) from None

    __call__ = decode

    def decode_rows(self, payloads: Sequence[bytes]) -> DecodedRows:
        """Every payload of ``payloads`` (each Confluent-framed) decoded, those of one schema
        id together: Avro records straight into typed columns (see
        :mod:`streamlab.model.schemas.avro_columns`). A payload that does not decode is in
        ``errors`` with what :meth:`decode` would have raised."""
        out = DecodedRows()
        heads = [payload[1:5] for payload in payloads]
        by_id: dict[int, list[int]] = {}
        if len(set(heads)) == 1:  # the usual topic: one schema id
            by_id[int.from_bytes(heads[0], "big")] = list(range(len(payloads)))
        else:
            for position, head in enumerate(heads):
                by_id.setdefault(int.from_bytes(head, "big"), []).append(position)
        for sid, positions in by_id.items():
            try:
                schema, parsed = self._schema(sid)
            except StreamlabError as exc:  # an unknown id; a schema that does not parse
                out.errors.update(dict.fromkeys(positions, str(exc)))
                continue
            if schema.schema_type == "AVRO":
                self._avro_rows(sid, parsed, payloads, positions, out)
                continue
            for position in positions:
                try:
                    value = self.decode(payloads[position])
                except StreamlabError as exc:
                    out.errors[position] = str(exc)
                    continue
                if isinstance(value, dict):
                    out.records[position] = value
                else:
                    out.scalars[position] = value
        return out

    def _avro_rows(self, sid: int, parsed: Any, payloads: Sequence[bytes], positions: list[int],
                   out: DecodedRows) -> None:  # fmt: skip
        columns = self._columns.get(sid)
        if columns is None:
            columns = self._columns[sid] = AvroColumns(parsed)
        import fastavro

        read, reader_schema, body = fastavro.schemaless_reader, columns.reader_schema, io.BytesIO
        values: list[Any] = []
        decoded: list[int] = []
        for position in positions:
            try:
                payload = body(payloads[position])  # no copy of the bytes
                payload.seek(HEADER.size)
                values.append(read(payload, reader_schema, None))
            except Exception as exc:  # fastavro: EOFError, ValueError...
                out.errors[position] = f"payload of schema id {sid} does not decode as AVRO: {exc}"
                continue
            decoded.append(position)
        if columns.is_record:
            if decoded:  # no record: no columns, as when decoding one at a time
                out.fields.append(columns.frame(values, decoded))
        else:
            out.scalars.update(zip(decoded, values, strict=True))

    def encode(self, value: Any, sid: int) -> bytes:
        """``value`` framed under schema ``sid`` (JSON is validated first; a Protobuf value
        is a dict of the first message's fields)."""
        schema, parsed = self._schema(sid)
        if schema.schema_type == "PROTOBUF":
            return frame(sid, _FIRST_MESSAGE + _encode_protobuf(value, parsed, sid))
        try:
            if schema.schema_type == "AVRO":
                import fastavro

                out = io.BytesIO()
                fastavro.schemaless_writer(out, parsed, value)
                return frame(sid, out.getvalue())
            if schema.schema_type == "JSON":
                validator = self._validators.get(sid)
                if validator is None:  # built once: jsonschema.validate() rebuilds it on every call
                    import jsonschema

                    validator = self._validators[sid] = jsonschema.validators.validator_for(parsed)(parsed)
                validator.validate(value)
                return frame(sid, orjson.dumps(value))
        except Exception as exc:  # fastavro: ValueError/TypeError; jsonschema: ValidationError
            raise SchemaDecodeError(
                f"value does not encode with schema id {sid} ({schema.schema_type}): {exc}"
            ) from None
        raise SchemaDecodeError(f"schema id {sid} is of type {schema.schema_type}, which streamlab does not encode")


def decode_confluent(payload: bytes, lookup: SchemaLookup, resolve: Resolve | None = None) -> Any:
    """The value of one Confluent-framed ``payload``, its schema found by ``lookup(id)``
    (for many payloads, keep a :class:`ConfluentCodec`: it parses each schema once)."""
    return ConfluentCodec(lookup, resolve).decode(payload)


def encode_confluent(value: Any, schema_id: int, lookup: SchemaLookup, resolve: Resolve | None = None) -> bytes:
    """``value`` in Confluent's wire format under registered schema ``schema_id``."""
    return ConfluentCodec(lookup, resolve).encode(value, schema_id)


# Protobuf ---------------------------------------------------------------------------------
def _protobuf_pool(schema: Schema, resolve: Resolve) -> Any:
    try:
        from streamlab.model.schemas.proto import descriptor_pool

        return descriptor_pool(schema, resolve)
    except ModuleNotFoundError as exc:
        raise SchemaDecodeError(f"decoding Protobuf needs {exc.name}: pip install 'streamlab[registry]'") from None
    except InvalidSchemaError as exc:
        raise SchemaDecodeError(str(exc)) from None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data):
            raise SchemaDecodeError("truncated Protobuf message indexes")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos  # zigzag, as Confluent writes them
        shift += 7


# Message indexes [0] (the file's first message), written as confluent-kafka's
# ProtobufSerializer writes them: the single byte 0 instead of a count and the index.
_FIRST_MESSAGE = b"\x00"


def _first_message(parsed: Any) -> Any:
    pool, proto = parsed
    if not proto.message_type:
        raise SchemaDecodeError(f"the Protobuf schema {proto.name} declares no message")
    top = proto.message_type[0].name
    return pool.FindMessageTypeByName(f"{proto.package}.{top}" if proto.package else top)


def _json_ready(value: Any) -> Any:
    """``value`` in the shape protobuf's JSON parser takes: datetimes as RFC 3339 UTC text
    (Timestamps; naive ones taken as UTC), bytes as base64, NaN and infinities as their
    names (a float NaN is refused otherwise)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and (value != value or value in (math.inf, -math.inf)):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dt.datetime):
        utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


def _encode_protobuf(value: Any, parsed: Any, sid: int) -> bytes:
    from google.protobuf import json_format, message_factory

    descriptor = _first_message(parsed)
    if not isinstance(value, dict):
        raise SchemaDecodeError(
            f"a Protobuf value is a dict of {descriptor.full_name}'s fields, got {type(value).__name__}"
        )
    message = message_factory.GetMessageClass(descriptor)()
    try:
        json_format.ParseDict(_json_ready(value), message)
    except Exception as exc:  # json_format.ParseError names the field: "Failed to parse n field: ..."
        raise SchemaDecodeError(
            f"value does not encode with schema id {sid} (PROTOBUF {descriptor.full_name}): {exc}"
        ) from None
    return bytes(message.SerializeToString())


def _decode_protobuf(body: bytes, parsed: Any) -> Any:
    from google.protobuf import message_factory

    from streamlab.model.schemas.proto_values import message_values

    pool, proto = parsed

    count, pos = _varint(body, 0)
    indexes = [0] if count == 0 else []
    for _ in range(count):
        index, pos = _varint(body, pos)
        indexes.append(index)
    try:
        top = proto.message_type[indexes[0]].name
        descriptor = pool.FindMessageTypeByName(f"{proto.package}.{top}" if proto.package else top)
    except (IndexError, KeyError):
        raise SchemaDecodeError(f"no message at index {indexes[0]} of {proto.name}") from None
    for index in indexes[1:]:
        descriptor = descriptor.nested_types[index]
    message = message_factory.GetMessageClass(descriptor).FromString(body[pos:])
    return message_values(message)
