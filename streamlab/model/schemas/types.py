"""A Schema Registry's value types, as Confluent's REST API names them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from streamlab.errors import InvalidCompatibilityLevelError, InvalidSchemaError

SchemaType = Literal["AVRO", "JSON", "PROTOBUF"]
SCHEMA_TYPES: Final[tuple[SchemaType, ...]] = ("AVRO", "JSON", "PROTOBUF")

CompatibilityLevel = Literal[
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"
]
LEVELS: Final[tuple[CompatibilityLevel, ...]] = (
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE",
)  # fmt: skip
DEFAULT_LEVEL: Final[CompatibilityLevel] = "BACKWARD"  # Confluent's default


def schema_type(value: object) -> SchemaType:
    """``value`` (any case) as a schema type, or InvalidSchemaError."""
    name = value.upper() if isinstance(value, str) else value
    if name not in SCHEMA_TYPES:
        raise InvalidSchemaError(f"unknown schema type {value!r}; choose from {', '.join(SCHEMA_TYPES)}")
    return name


def compatibility_level(value: object) -> CompatibilityLevel:
    """``value`` (any case) as a compatibility level, or InvalidCompatibilityLevelError."""
    name = value.upper() if isinstance(value, str) else value
    if name not in LEVELS:
        raise InvalidCompatibilityLevelError(f"invalid compatibility level {value!r}; choose from {', '.join(LEVELS)}")
    return name


@dataclass(frozen=True, slots=True)
class SchemaReference:
    """A named type or file another schema uses: ``name`` is how the schema refers to it
    (an Avro full name, a JSON Schema ``$ref`` URL, a .proto import), stored as ``version``
    of ``subject``."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}

    @classmethod
    def from_json(cls, data: object) -> SchemaReference:
        if not isinstance(data, dict):
            raise InvalidSchemaError(f"a reference is an object with name, subject and version, got {data!r}")
        name, subject, version = data.get("name"), data.get("subject"), data.get("version")
        if not isinstance(name, str) or not isinstance(subject, str) or type(version) is not int:
            raise InvalidSchemaError(f"a reference needs a name, a subject and an integer version, got {data!r}")
        return cls(name, subject, version)


@dataclass(frozen=True, slots=True)
class Schema:
    """A schema's text (Avro and JSON Schema: JSON; Protobuf: .proto text or a base64
    FileDescriptorProto, as confluent-kafka's ProtobufSerializer sends), its type and references."""

    schema: str
    schema_type: SchemaType = "AVRO"
    references: tuple[SchemaReference, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The REST API's shape: ``schemaType`` left out for Avro, as Confluent does."""
        out: dict[str, Any] = {"schema": self.schema}
        if self.schema_type != "AVRO":
            out["schemaType"] = self.schema_type
        if self.references:
            out["references"] = [r.to_json() for r in self.references]
        return out

    @classmethod
    def from_json(cls, data: object) -> Schema:
        if not isinstance(data, dict) or not isinstance(data.get("schema"), str):
            raise InvalidSchemaError("the request needs a 'schema' string")
        refs = data.get("references") or []
        if not isinstance(refs, list):
            raise InvalidSchemaError(f"references is a list, got {refs!r}")
        kind = schema_type(data.get("schemaType") or "AVRO")
        return cls(data["schema"], kind, tuple(SchemaReference.from_json(r) for r in refs))


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """``schema`` registered as ``version`` of ``subject``, with the global id ``id``."""

    id: int
    subject: str
    version: int
    schema: Schema

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "version": self.version, "id": self.id, **self.schema.to_json()}
