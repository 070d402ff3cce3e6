"""Compatibility of a new schema with a subject's earlier versions, as Confluent's registry
defines the levels:

* BACKWARD: the new schema reads data written with the latest version (consumers upgrade first);
* FORWARD: the latest version reads data written with the new schema (producers upgrade first);
* FULL: both; NONE: no check. The ``_TRANSITIVE`` variants check every earlier version, not
  only the latest.

Avro uses the ``avro`` package's reader/writer checker (the Avro spec's schema resolution:
a reader field missing from the writer needs a default, type promotions int→long→float→double
and string↔bytes, enum symbols, union branches, names). JSON Schema is checked with the
rules below (:func:`json_incompatibilities`). Protobuf is checked on its descriptors with
Confluent's rules (:func:`protobuf_incompatibilities`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from streamlab.model.schemas.parse import Resolve, avro_schema, json_schema
from streamlab.model.schemas.types import CompatibilityLevel, Schema


def incompatibilities(level: CompatibilityLevel, new: Schema, earlier: Sequence[Schema], resolve: Resolve) -> list[str]:
    """Why ``new`` breaks ``level`` against ``earlier`` (oldest first); empty when compatible.
    Earlier versions of another schema type are skipped (Confluent compares like with like)."""
    if level == "NONE" or not earlier:
        return []
    against = earlier if level.endswith("_TRANSITIVE") else earlier[-1:]
    backward, forward = level.startswith(("BACKWARD", "FULL")), level.startswith(("FORWARD", "FULL"))
    messages: list[str] = []
    for old in against:
        if old.schema_type != new.schema_type:
            continue
        if backward:
            messages += [f"{m} (the new schema reading data of an earlier one)" for m in _pair(new, old, resolve)]
        if forward:
            messages += [f"{m} (an earlier schema reading data of the new one)" for m in _pair(old, new, resolve)]
    return messages


def _pair(reader: Schema, writer: Schema, resolve: Resolve) -> list[str]:
    check = _CHECKS.get(reader.schema_type)
    return [] if check is None else check(reader, writer, resolve)


def avro_incompatibilities(reader: Schema, writer: Schema, resolve: Resolve) -> list[str]:
    """Why the Avro ``reader`` cannot read what ``writer`` wrote (the Avro spec's resolution)."""
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro_schema(reader, resolve), avro_schema(writer, resolve)
    )
    if result.compatibility == SchemaCompatibilityType.compatible:
        return []
    kinds = sorted(str(getattr(k, "value", k)) for k in result.incompatibilities)
    details = ", ".join(sorted(str(m) for m in result.messages))
    where = ", ".join(sorted(str(loc) for loc in result.locations))
    return [f"{', '.join(kinds)} at {where or '/'}: {details}"]


def json_incompatibilities(reader: Schema, writer: Schema, resolve: Resolve) -> list[str]:
    """Why the JSON Schema ``reader`` may refuse a document ``writer`` accepts: see :func:`json_rules`."""
    return json_rules(json_schema(reader), json_schema(writer), "#")


_NARROWER: dict[str, Callable[[Any, Any], bool]] = {
    "maxLength": lambda r, w: r < w, "minLength": lambda r, w: r > w,
    "maximum": lambda r, w: r < w, "minimum": lambda r, w: r > w,
    "exclusiveMaximum": lambda r, w: r < w, "exclusiveMinimum": lambda r, w: r > w,
    "maxItems": lambda r, w: r < w, "minItems": lambda r, w: r > w,
    "maxProperties": lambda r, w: r < w, "minProperties": lambda r, w: r > w,
}  # fmt: skip
_COMBINERS = ("anyOf", "oneOf", "allOf", "not", "$ref", "pattern", "format", "const")


def _anything(schema: Any) -> bool:
    return schema is True or schema == {}


def json_rules(reader: Any, writer: Any, path: str) -> list[str]:
    """Whether every document ``writer`` accepts, ``reader`` accepts too, by these rules
    (those of Confluent's JSON Schema checker that matter most):

    * types: each writer type must be a reader type (``integer`` widens to ``number``);
    * ``enum``: the reader keeps every writer value; bounds (``maxLength``, ``minimum``,
      ``maxItems``...) may widen, not narrow;
    * ``required``: the reader may not require a property the writer did not;
    * properties: one the reader adds must be one the writer could not have written
      (writer ``additionalProperties: false``) or accept anything, else it is a property
      added to an open content model; one the reader drops must be allowed by the reader's
      ``additionalProperties``; ``additionalProperties`` may not turn false;
    * ``items`` and properties are compared recursively; ``anyOf``/``oneOf``/``allOf``/
      ``not``/``$ref``/``pattern``/``format``/``const`` must be unchanged (not compared inside).
    """
    if _anything(reader) or writer is False:
        return []
    if reader is False:
        return [f"{path}: the reader accepts nothing"]
    if _anything(writer):
        return [f"{path}: the writer accepted anything, the reader does not"]
    if not isinstance(reader, dict) or not isinstance(writer, dict):
        return [f"{path}: not a schema"]
    out = [f"{path}: {key} changed" for key in _COMBINERS if reader.get(key) != writer.get(key)]
    out += _types(reader, writer, path)
    if "enum" in reader:
        if "enum" not in writer:
            out.append(f"{path}: enum added")
        elif removed := [v for v in writer["enum"] if v not in reader["enum"]]:
            out.append(f"{path}: enum values removed: {removed}")
    for key, narrower in _NARROWER.items():
        if key in reader and (key not in writer or narrower(reader[key], writer[key])):
            out.append(f"{path}: {key} narrowed")
    if added := sorted(set(reader.get("required", [])) - set(writer.get("required", []))):
        out.append(f"{path}: required properties added: {added}")
    out += _properties(reader, writer, path)
    if "items" in reader or "items" in writer:
        out += json_rules(reader.get("items", True), writer.get("items", True), f"{path}/items")
    return out


def _types(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    if "type" not in reader:
        return []
    if "type" not in writer:
        return [f"{path}: type restricted to {reader['type']}"]
    wanted = {reader["type"]} if isinstance(reader["type"], str) else set(reader["type"])
    written = {writer["type"]} if isinstance(writer["type"], str) else set(writer["type"])
    lost = sorted(t for t in written if t not in wanted and not (t == "integer" and "number" in wanted))
    return [f"{path}: type changed, {lost} no longer accepted"] if lost else []


def _properties(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    out: list[str] = []
    rprops, wprops = reader.get("properties", {}), writer.get("properties", {})
    radd, wadd = reader.get("additionalProperties", True), writer.get("additionalProperties", True)
    for name, rschema in rprops.items():
        where = f"{path}/properties/{name}"
        if name in wprops:
            out += json_rules(rschema, wprops[name], where)
        elif wadd is False or _anything(rschema):
            continue  # the writer never wrote it, or the reader takes whatever it was
        elif _anything(wadd):
            out.append(f"{where}: property added to an open content model")
        else:
            out += json_rules(rschema, wadd, where)
    for name, wschema in wprops.items():
        if name in rprops:
            continue
        if radd is False:
            out.append(f"{path}/properties/{name}: property removed from a closed content model")
        elif not _anything(radd):
            out += json_rules(radd, wschema, f"{path}/properties/{name}")
    if wadd is not False and not _anything(radd):
        out += json_rules(radd, wadd, f"{path}/additionalProperties")
    return out


# Protobuf scalar types whose values read as one another on the wire (Confluent's groups)
_SCALAR_GROUPS = {3: "varint", 4: "varint", 5: "varint", 13: "varint", 8: "varint", 17: "zigzag", 18: "zigzag",
                  7: "fixed32", 15: "fixed32", 6: "fixed64", 16: "fixed64", 9: "text", 12: "text"}  # fmt: skip
_MESSAGE, _ENUM = 11, 14  # FieldDescriptor.TYPE_MESSAGE, TYPE_ENUM


def protobuf_incompatibilities(reader: Schema, writer: Schema, resolve: Resolve) -> list[str]:
    """What breaks between the Protobuf ``writer`` (the schema data was written with) and
    ``reader``, by Confluent's rules, fields compared by number: a message or package gone,
    a field whose kind (scalar, message, enum), scalar type (beyond the groups that share a
    wire encoding: int32/int64/uint32/uint64/bool, sint32/sint64, fixed32/sfixed32,
    fixed64/sfixed64, string/bytes) or named type changed, a required field added or
    removed, a field of a oneof removed, fields moved into a oneof. A removed or added
    optional field is compatible (readers skip unknown fields; missing ones read as
    defaults), so renumbering a field is an error only where its old number now holds
    another type."""
    from streamlab.model.schemas.proto import descriptor_pool

    new_pool, new_proto = descriptor_pool(reader, resolve)
    old_pool, old_proto = descriptor_pool(writer, resolve)
    new_file, old_file = new_pool.FindFileByName(new_proto.name), old_pool.FindFileByName(old_proto.name)
    problems: list[str] = []
    if new_file.package != old_file.package:
        problems.append(f"PACKAGE_CHANGED: {old_file.package!r} became {new_file.package!r}")
    new_messages = _proto_messages(new_file.message_types_by_name.values())
    for name, old in _proto_messages(old_file.message_types_by_name.values()).items():
        new = new_messages.get(name)
        if new is None:
            problems.append(f"MESSAGE_REMOVED: {name}")
        else:
            problems += _proto_fields(name, old, new)
    return problems


def _proto_messages(messages: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for message in messages:
        if not message.GetOptions().map_entry:
            out[message.full_name] = message
            out.update(_proto_messages(message.nested_types))
    return out


def _real_oneof(field: Any) -> Any:
    """The oneof ``field`` belongs to, unless the synthetic one of a proto3 ``optional``."""
    oneof = field.containing_oneof
    synthetic = oneof is not None and len(oneof.fields) == 1 and oneof.name == f"_{field.name}"
    return None if synthetic else oneof


def _proto_kind(field: Any) -> str:
    return {_MESSAGE: "message", _ENUM: "enum"}.get(field.type, "scalar")


def _proto_fields(name: str, old: Any, new: Any) -> list[str]:
    problems: list[str] = []
    new_fields = new.fields_by_number
    for number, was in old.fields_by_number.items():
        now = new_fields.get(number)
        where = f"{name}.{was.name} (field {number})"
        if now is None:
            if _required(was):
                problems.append(f"REQUIRED_FIELD_REMOVED: {where}")
            elif _real_oneof(was) is not None:
                problems.append(f"ONEOF_FIELD_REMOVED: {where} of oneof {_real_oneof(was).name}")
            continue
        kinds = _proto_kind(was), _proto_kind(now)
        if kinds[0] != kinds[1]:
            problems.append(f"FIELD_KIND_CHANGED: {where} was a {kinds[0]}, is a {kinds[1]}")
        elif (
            kinds[0] == "scalar"
            and was.type != now.type
            and _SCALAR_GROUPS.get(was.type, was.type) != _SCALAR_GROUPS.get(now.type, now.type)
        ):
            problems.append(f"FIELD_SCALAR_KIND_CHANGED: {where} type {_type_name(was)} became {_type_name(now)}")
        elif kinds[0] != "scalar" and _named(was) != _named(now):
            problems.append(f"FIELD_NAMED_TYPE_CHANGED: {where} type {_named(was)} became {_named(now)}")
    old_fields = old.fields_by_number
    for number, now in new_fields.items():
        if number not in old_fields and _required(now):
            problems.append(f"REQUIRED_FIELD_ADDED: {name}.{now.name} (field {number})")
    old_oneofs = {oneof.name for oneof in old.oneofs}
    for oneof in new.oneofs:
        moved = [f for f in oneof.fields if f.number in old_fields and _real_oneof(old_fields[f.number]) is None]
        if oneof.name in old_oneofs and moved and _real_oneof(moved[0]) is not None:
            problems.append(f"FIELD_MOVED_TO_EXISTING_ONEOF: {name}.{moved[0].name} into oneof {oneof.name}")
        elif oneof.name not in old_oneofs and len(moved) > 1:
            problems.append(
                f"MULTIPLE_FIELDS_MOVED_TO_ONEOF: {', '.join(f.name for f in moved)} into {name}.{oneof.name}"
            )
    return problems


def _required(field: Any) -> bool:
    if hasattr(field, "is_required"):  # protobuf 6.31+; ``label`` is gone in 7
        return bool(field.is_required)
    return bool(field.label == 2)  # LABEL_REQUIRED


def _named(field: Any) -> str:
    return str((field.message_type or field.enum_type).full_name)


def _type_name(field: Any) -> str:
    from google.protobuf.descriptor import FieldDescriptor

    names = {value: key.removeprefix("TYPE_").lower() for key, value in vars(FieldDescriptor).items()
             if key.startswith("TYPE_") and isinstance(value, int)}  # fmt: skip
    return names.get(field.type, str(field.type))


_CHECKS: dict[str, Callable[[Schema, Schema, Resolve], list[str]]] = {
    "AVRO": avro_incompatibilities,
    "JSON": json_incompatibilities,
    "PROTOBUF": protobuf_incompatibilities,
}
