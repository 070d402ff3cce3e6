"""Protobuf schemas as descriptors, for decoding and for compatibility checks.

A registry holds a Protobuf schema either as a base64 ``FileDescriptorProto`` (what
confluent-kafka's Python ``ProtobufSerializer`` registers) or as ``.proto`` text (what
Confluent's Java serializers and most ``SchemaRegistryClient`` users register). Text is
parsed by ``proto-schema-parser`` (a maintained pure-Python .proto grammar; ``protoc``
would need a compiled toolchain) and its syntax tree turned into a ``FileDescriptorProto``;
the ``protobuf`` package's descriptor pool then resolves type names, as ``protoc`` does.
References are the schema's imports (their ``name`` is the import path); the well-known
types (``google/protobuf/timestamp.proto``...) come from the ``protobuf`` package itself.
"""

from __future__ import annotations

import base64
import binascii
import importlib
from typing import Any

from streamlab.errors import InvalidSchemaError
from streamlab.model.schemas.parse import MAX_REFERENCE_DEPTH, Resolve
from streamlab.model.schemas.types import Schema

_SCALARS = {
    "double": 1, "float": 2, "int64": 3, "uint64": 4, "int32": 5, "fixed64": 6, "fixed32": 7, "bool": 8,
    "string": 9, "bytes": 12, "uint32": 13, "sfixed32": 15, "sfixed64": 16, "sint32": 17, "sint64": 18,
}  # fmt: skip  # FieldDescriptorProto.Type by .proto name
_LABEL_OPTIONAL, _LABEL_REQUIRED, _LABEL_REPEATED = 1, 2, 3
_WELL_KNOWN = ("any", "api", "duration", "empty", "field_mask", "source_context", "struct", "timestamp", "type",
               "wrappers")  # fmt: skip  # google/protobuf/<name>.proto, shipped with protobuf as <name>_pb2
MAIN_FILE = "schema.proto"  # the name a registered schema's own file gets in its pool


def is_text(text: str) -> bool:
    """Whether a registered Protobuf schema is .proto text (else a base64 descriptor)."""
    try:
        base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return True
    return False


def file_proto(schema: Schema, name: str = MAIN_FILE) -> Any:
    """``schema`` as a ``FileDescriptorProto`` (``name`` is its file name when it is .proto text)."""
    from google.protobuf import descriptor_pb2
    from google.protobuf.message import DecodeError

    text = schema.schema.strip()
    if not text:
        raise InvalidSchemaError("invalid PROTOBUF schema: empty")
    if is_text(text):
        return _from_text(text, name)
    try:
        return descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(text, validate=True))
    except DecodeError as exc:
        raise InvalidSchemaError(f"invalid PROTOBUF schema: not a FileDescriptorProto ({exc})") from None


def descriptor_pool(schema: Schema, resolve: Resolve) -> tuple[Any, Any]:
    """A descriptor pool holding ``schema``'s file, its references' and the well-known
    types they import; and ``schema``'s ``FileDescriptorProto``. Raises InvalidSchemaError
    when a type does not resolve."""
    from google.protobuf import descriptor_pool as pools

    pool = pools.DescriptorPool()

    def add(s: Schema, name: str, depth: int) -> Any:
        if depth > MAX_REFERENCE_DEPTH:
            raise InvalidSchemaError(f"references nested deeper than {MAX_REFERENCE_DEPTH}: is there a cycle?")
        proto = file_proto(s, name)
        referenced = {ref.name: ref for ref in s.references}
        for dependency in proto.dependency:
            if _known(pool, dependency):
                continue
            if dependency in referenced:
                add(resolve(referenced[dependency]), dependency, depth + 1)
            else:
                _add_well_known(pool, dependency)
        if not _known(pool, proto.name):
            try:
                pool.Add(proto)
            except Exception as exc:  # TypeError/KeyError from the pool: an unknown type, a clash
                raise InvalidSchemaError(f"invalid PROTOBUF schema: {exc}") from None
        return proto

    return pool, add(schema, MAIN_FILE, 0)


def _known(pool: Any, name: str) -> bool:
    try:
        pool.FindFileByName(name)
    except KeyError:
        return False
    return True


def _add_well_known(pool: Any, name: str) -> None:
    stem = name.removeprefix("google/protobuf/").removesuffix(".proto")
    if not name.startswith("google/protobuf/") or stem not in _WELL_KNOWN:
        raise InvalidSchemaError(f"invalid PROTOBUF schema: it imports {name!r}, which is neither a reference "
                                 "(give it in references=) nor a well-known type")  # fmt: skip
    module = importlib.import_module(f"google.protobuf.{stem}_pb2")
    for dependency in module.DESCRIPTOR.dependencies:
        if not _known(pool, dependency.name):
            _add_well_known(pool, dependency.name)
    pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)


# .proto text ------------------------------------------------------------------------------
def _parse(text: str) -> Any:
    from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
    from proto_schema_parser.parser import Parser

    class Refuse(ErrorListener):  # the default listener prints and goes on
        def syntaxError(self, recognizer: Any, symbol: Any, line: int, column: int, msg: str, e: Any) -> None:
            raise InvalidSchemaError(f"invalid PROTOBUF schema: line {line}:{column}: {msg}")

    def strict(part: Any) -> None:
        part.removeErrorListeners()
        part.addErrorListener(Refuse())

    try:
        return Parser(setup_lexer=strict, setup_parser=strict).parse(text)
    except InvalidSchemaError:
        raise
    except Exception as exc:  # the tree builder's own ValueErrors on what the grammar let through
        raise InvalidSchemaError(f"invalid PROTOBUF schema: {exc}") from None


def _from_text(text: str, name: str) -> Any:
    from google.protobuf import descriptor_pb2
    from proto_schema_parser import ast

    tree = _parse(text)
    if tree.edition is not None:
        raise InvalidSchemaError("invalid PROTOBUF schema: editions are not supported here; use proto2 or proto3")
    syntax = tree.syntax or "proto2"
    proto = descriptor_pb2.FileDescriptorProto(name=name, syntax=syntax)
    for element in tree.file_elements:
        if isinstance(element, ast.Package):
            proto.package = element.name
        elif isinstance(element, ast.Import):
            proto.dependency.append(element.name)
        elif isinstance(element, ast.Message):
            _message(proto.message_type.add(), element, syntax)
        elif isinstance(element, ast.Enum):
            _enum(proto.enum_type.add(), element)
    return proto


def _message(out: Any, message: Any, syntax: str) -> None:
    from proto_schema_parser import ast

    out.name = message.name
    synthetic: list[Any] = []  # proto3 `optional` fields: their oneofs go after the real ones
    for element in message.elements:
        if isinstance(element, ast.Field):
            field = _field(out.field.add(), element, syntax)
            if field.proto3_optional:
                synthetic.append(field)
        elif isinstance(element, ast.MapField):
            _map_field(out, element)
        elif isinstance(element, ast.OneOf):
            index = len(out.oneof_decl)
            out.oneof_decl.add(name=element.name)
            for inner in element.elements:
                if isinstance(inner, ast.Field):
                    _field(out.field.add(), inner, syntax).oneof_index = index
        elif isinstance(element, ast.Message):
            _message(out.nested_type.add(), element, syntax)
        elif isinstance(element, ast.Enum):
            _enum(out.enum_type.add(), element)
    for field in synthetic:
        field.oneof_index = len(out.oneof_decl)
        out.oneof_decl.add(name=f"_{field.name}")


def _field(out: Any, field: Any, syntax: str) -> Any:
    from proto_schema_parser import ast

    out.name, out.number = field.name, field.number
    _typed(out, field.type)
    cardinality = field.cardinality
    out.label = {ast.FieldCardinality.REPEATED: _LABEL_REPEATED,
                 ast.FieldCardinality.REQUIRED: _LABEL_REQUIRED}.get(cardinality, _LABEL_OPTIONAL)  # fmt: skip
    if cardinality == ast.FieldCardinality.OPTIONAL and syntax == "proto3":
        out.proto3_optional = True
    return out


def _typed(out: Any, type_name: str) -> None:
    if type_name in _SCALARS:
        out.type = _SCALARS[type_name]
    else:
        out.type_name = type_name  # message or enum: the pool resolves it in scope, as protoc does


def _map_field(out: Any, field: Any) -> None:
    entry_name = "".join(part[:1].upper() + part[1:] for part in field.name.split("_")) + "Entry"  # as protoc names it
    entry = out.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _typed(entry.field.add(name="key", number=1, label=_LABEL_OPTIONAL), field.key_type)
    _typed(entry.field.add(name="value", number=2, label=_LABEL_OPTIONAL), field.value_type)
    out.field.add(name=field.name, number=field.number, label=_LABEL_REPEATED, type_name=entry_name)


def _enum(out: Any, enum: Any) -> None:
    from proto_schema_parser import ast

    out.name = enum.name
    for element in enum.elements:
        if isinstance(element, ast.EnumValue):
            out.value.add(name=element.name, number=element.number)
