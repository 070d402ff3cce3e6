"""Parsing request frames as Kafka's broker does, on top of :func:`parse_request`.

Before kio sees a frame, :func:`check_lengths` walks it against the schema and refuses
any array whose element count exceeds the bytes left: kio's native reader reserves memory
for the count it reads, so a forged count of 2**31 - 1 would abort the whole process (Kafka
makes the same check). Then two differences from the strict parser, both for Kafka
compatibility:

* bytes after a complete body are ignored, as Kafka's own parser ignores them:
  librdkafka 2.16 sends three after a Metadata v12 request for all topics, and refusing
  them would refuse confluent-kafka;
* a null where the schema has a non-nullable array (kio reads a -1 length as None) is a
  malformed request, as it is for Kafka, so handlers can rely on the schema's types.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import sys
import types
import typing
from typing import Any, NamedTuple

from kio.index import load_request_schema as _load_request_schema
from kio.serial import entity_reader

from streamlab.protocol import produce_codec
from streamlab.protocol.framing import (
    API_NAMES,
    SUPPORTED_APIS,
    InvalidRequestError,
    ParsedRequest,
    parse_request,
)
from streamlab.protocol.varint import Malformed, read_uvarint

__all__ = ["check_lengths", "parse"]

_FIXED = {"int8": 1, "bool": 1, "int16": 2, "int32": 4, "timedelta_i32": 4, "int64": 8, "timedelta_i64": 8,
          "uuid": 16}  # fmt: skip
_LENGTH_PREFIXED = {"string", "bytes", "records"}


_PREFIX = struct.Struct(">hhi")  # api key, api version, correlation id


def _take(buf: bytes, pos: int, n: int) -> int:
    if n < 0 or pos + n > len(buf):
        raise Malformed(f"{n} bytes at {pos} overrun the frame")
    return pos + n


def _length(buf: bytes, pos: int, flexible: bool, width: str) -> tuple[int, int]:
    """A length or count: -1 is null. ``width`` is the struct format of the legacy form."""
    if flexible:
        value, pos = read_uvarint(buf, pos)
        return value - 1, pos
    end = _take(buf, pos, struct.calcsize(width))
    return struct.unpack_from(width, buf, pos)[0], end


class _Field(NamedTuple):
    name: str
    nullable: bool
    is_array: bool
    entity: Any  # the nested kio entity type, or None for primitives
    kafka_type: str  # "" for entities
    tagged: bool


@functools.cache
def _fields(cls: Any) -> tuple[_Field, ...]:
    """How each field of a kio entity is laid out, from its type hints and metadata."""
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    out = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        parts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        arrays = [p for p in parts if typing.get_origin(p) is tuple]
        inner = typing.get_args(arrays[0])[0] if arrays else next(p for p in parts if p is not type(None))
        entity = inner if isinstance(inner, type) and dataclasses.is_dataclass(inner) else None
        kafka_type = "" if entity is not None else field.metadata["kafka_type"]
        # What _skim can walk (tagged fields it skips by size); the tests check every request.
        walkable = kafka_type in _FIXED.keys() | _LENGTH_PREFIXED if entity is None else bool(arrays)
        if not walkable and "tag" not in field.metadata:
            raise TypeError(f"{cls.__name__}.{field.name}: {kafka_type or 'a nested entity'} is not handled")
        out.append(_Field(field.name, type(None) in parts, bool(arrays), entity, kafka_type, "tag" in field.metadata))
    return tuple(out)


# kio resolves a schema by importing its module each time: once per API version is enough.
load_request_schema = functools.cache(_load_request_schema)


def _plan(cls: Any) -> tuple[_Field, ...]:
    """The untagged fields in wire order (tagged ones sit in the tagged section)."""
    return tuple(f for f in _fields(cls) if not f.tagged)


@functools.cache
def _min_size(cls: Any) -> int:
    """The fewest bytes one ``cls`` entity can take on the wire."""
    flexible = cls.__flexible__
    size = 1 if flexible else 0  # the tagged-field count
    for field in _plan(cls):
        size += (1 if flexible else 4) if field.is_array else _element_size(field.kafka_type, None, flexible)
    return size


def _element_size(kafka_type: str, entity: Any, flexible: bool) -> int:
    if entity is not None:
        return _min_size(entity)
    if kafka_type in _FIXED:
        return _FIXED[kafka_type]
    return 1 if flexible else (2 if kafka_type == "string" else 4)


def _skip_primitive(buf: bytes, pos: int, kafka_type: str, flexible: bool, legacy_string: bool) -> int:
    if kafka_type in _FIXED:
        return _take(buf, pos, _FIXED[kafka_type])
    width = ">h" if kafka_type == "string" and (legacy_string or not flexible) else ">i"
    size, pos = _length(buf, pos, flexible and not legacy_string, width)
    return pos if size == -1 else _take(buf, pos, size)


def _skim(cls: Any, buf: bytes, pos: int, *, header: bool = False) -> int:
    flexible = cls.__flexible__
    for field in _plan(cls):
        if not field.is_array:
            # A request header's client id is a legacy string even in flexible headers.
            pos = _skip_primitive(buf, pos, field.kafka_type, flexible, legacy_string=header)
            continue
        count, pos = _length(buf, pos, flexible, ">i")
        if count * _element_size(field.kafka_type, field.entity, flexible) > len(buf) - pos:
            raise Malformed(f"an array of {count} elements cannot fit in the {len(buf) - pos} bytes left")
        for _ in range(max(count, 0)):
            if field.entity is not None:
                pos = _skim(field.entity, buf, pos)
            else:
                pos = _skip_primitive(buf, pos, field.kafka_type, flexible, legacy_string=False)
    if flexible:
        tags, pos = read_uvarint(buf, pos)
        for _ in range(tags):
            _, pos = read_uvarint(buf, pos)
            size, pos = read_uvarint(buf, pos)
            pos = _take(buf, pos, size)
    return pos


def check_lengths(frame: bytes) -> None:
    """Raise :class:`InvalidRequestError` if an array count in ``frame`` overruns it."""
    if len(frame) < 8:
        return  # parse_request reports it
    api_key, api_version, correlation_id = struct.unpack_from(">hhi", frame)
    versions = SUPPORTED_APIS.get(api_key)
    if versions is None or not versions[0] <= api_version <= versions[1]:
        return  # parse_request reports it
    schema = load_request_schema(api_key, api_version)
    try:
        _skim(schema, frame, _skim(schema.__header_schema__, frame, 0, header=True))
    except Malformed as exc:
        raise InvalidRequestError(
            f"malformed {API_NAMES[api_key]} v{api_version} request: {exc}",
            correlation_id=correlation_id, api_key=api_key, api_version=api_version,
        ) from None  # fmt: skip


def _null_field(entity: Any) -> str | None:
    """The name of the first non-nullable field holding None, searched depth first."""
    for field in _fields(entity.__class__):
        value = getattr(entity, field.name)
        if value is None:
            if not field.nullable:
                return field.name
            continue
        if field.entity is not None:
            for item in value if isinstance(value, tuple) else (value,):
                found = _null_field(item)
                if found is not None:
                    return f"{field.name}.{found}"
    return None


def _lenient(frame: bytes, exc: InvalidRequestError) -> ParsedRequest:
    key, version, correlation_id = exc.api_key, exc.api_version, exc.correlation_id
    if key is None or key not in SUPPORTED_APIS or version is None or correlation_id is None:
        raise exc
    try:
        schema = load_request_schema(key, version)
        header, size = entity_reader(schema.__header_schema__)(frame, 0)
        body, _ = entity_reader(schema)(frame, size)
    except Exception:  # malformed for real: the strict parser's error says why
        raise exc from None
    return ParsedRequest(key, version, correlation_id, header.client_id, body)


def parse(frame: bytes) -> ParsedRequest:
    """Parse one request frame; raises :class:`~streamlab.protocol.framing.ProtocolError`."""
    if len(frame) >= _PREFIX.size:
        api_key, api_version, correlation_id = _PREFIX.unpack_from(frame)
        low, high = SUPPORTED_APIS[produce_codec.API_KEY]
        if api_key == produce_codec.API_KEY and low <= api_version <= high:  # the hot path, read by hand
            return produce_codec.read_produce_request(frame, api_version, correlation_id)
    check_lengths(frame)
    try:
        request = parse_request(frame)
    except InvalidRequestError as exc:
        request = _lenient(frame, exc)
    null = _null_field(request.body)
    if null is not None:
        name = API_NAMES[request.api_key]
        raise InvalidRequestError(
            f"malformed {name} v{request.api_version} request: {null} is null",
            correlation_id=request.correlation_id,
            api_key=request.api_key,
            api_version=request.api_version,
        )
    return request
