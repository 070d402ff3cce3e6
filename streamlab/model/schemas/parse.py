"""Parsing schemas of each type, with their references, into what the codecs and the
compatibility checks use; and each schema's canonical text, which decides whether two
registrations are the same schema (same canonical text, type and references: same id).

Avro is parsed by fastavro (for encoding) and by the ``avro`` package (for its
reader/writer compatibility checker); JSON Schema is checked against its metaschema by
``jsonschema``; Protobuf (.proto text or a base64 FileDescriptorProto, as
confluent-kafka's ProtobufSerializer sends) is checked by building its descriptors
(:mod:`streamlab.model.schemas.proto`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from streamlab.errors import InvalidSchemaError
from streamlab.model.schemas.types import Schema, SchemaReference

Resolve = Callable[[SchemaReference], Schema]  # a reference's schema (raises SubjectNotFoundError...)
MAX_REFERENCE_DEPTH = 32  # references of references: deeper is a cycle or a mistake


def canonical(schema: Schema) -> Schema:
    """``schema`` with its text in canonical form (compact JSON for Avro and JSON Schema,
    keys in their order; Protobuf stripped of surrounding blanks). Raises InvalidSchemaError
    for text that is not JSON."""
    if schema.schema_type == "PROTOBUF":
        return Schema(schema.schema.strip(), schema.schema_type, schema.references)
    return Schema(json.dumps(_json(schema), separators=(",", ":")), schema.schema_type, schema.references)


def validate(schema: Schema, resolve: Resolve) -> None:
    """Raise InvalidSchemaError unless ``schema`` (with its references) parses."""
    if schema.schema_type == "AVRO":
        fastavro_schema(schema, resolve)
        avro_schema(schema, resolve)
    elif schema.schema_type == "JSON":
        json_schema(schema)
    else:
        _check_protobuf(schema, resolve)


def _json(schema: Schema) -> Any:
    try:
        return json.loads(schema.schema)
    except ValueError as exc:
        raise InvalidSchemaError(f"invalid {schema.schema_type} schema: not JSON ({exc})") from None


def _references(schema: Schema, resolve: Resolve, depth: int = 0) -> list[Schema]:
    """Every schema ``schema`` references, depth first (a reference before what uses it)."""
    if depth > MAX_REFERENCE_DEPTH:
        raise InvalidSchemaError(f"references nested deeper than {MAX_REFERENCE_DEPTH}: is there a cycle?")
    out: list[Schema] = []
    for ref in schema.references:
        target = resolve(ref)
        out.extend(_references(target, resolve, depth + 1))
        out.append(target)
    return out


def fastavro_schema(schema: Schema, resolve: Resolve) -> Any:
    """The schema parsed by fastavro, named types of its references included."""
    import fastavro

    named: dict[str, Any] = {}
    try:
        for ref in _references(schema, resolve):
            fastavro.parse_schema(_json(ref), named_schemas=named)
        return fastavro.parse_schema(_json(schema), named_schemas=named)
    except InvalidSchemaError:
        raise
    except Exception as exc:  # fastavro raises SchemaParseException, UnknownType, ValueError...
        raise InvalidSchemaError(f"invalid AVRO schema: {exc}") from None


def avro_schema(schema: Schema, resolve: Resolve) -> Any:
    """The schema parsed by the ``avro`` package (what its compatibility checker takes)."""
    import avro.name
    import avro.schema

    names = avro.name.Names()
    try:
        for ref in _references(schema, resolve):
            avro.schema.make_avsc_object(_json(ref), names)
        return avro.schema.make_avsc_object(_json(schema), names)
    except InvalidSchemaError:
        raise
    except Exception as exc:  # avro raises SchemaParseException and friends
        raise InvalidSchemaError(f"invalid AVRO schema: {exc}") from None


def json_schema(schema: Schema) -> Any:
    """The JSON Schema as a Python object, checked against its metaschema."""
    import jsonschema
    import jsonschema.exceptions

    document = _json(schema)
    if not isinstance(document, dict | bool):
        raise InvalidSchemaError(f"invalid JSON schema: an object or a boolean, got {type(document).__name__}")
    try:
        jsonschema.validators.validator_for(document).check_schema(document)
    except jsonschema.exceptions.SchemaError as exc:
        raise InvalidSchemaError(f"invalid JSON schema: {exc.message}") from None
    return document


def _check_protobuf(schema: Schema, resolve: Resolve) -> None:
    """.proto text or a base64 FileDescriptorProto whose types all resolve (with its references)."""
    from streamlab.model.schemas.proto import descriptor_pool

    if not schema.schema.strip():
        raise InvalidSchemaError("invalid PROTOBUF schema: empty")
    try:
        descriptor_pool(schema, resolve)
    except ModuleNotFoundError:  # protobuf or proto-schema-parser missing: stored as given
        return
