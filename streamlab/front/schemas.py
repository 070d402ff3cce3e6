"""``lab.schemas``: a Schema Registry from a notebook, the same over every backend.

An embedded lab's registry lives in its data directory (the ``_schemas`` topic), so
``streamlab serve --schema-registry-port`` serves the same schemas to Kafka clients, and a
``connect(dir)`` after the server stops sees what they registered. A ``kafka://`` lab uses
the registry given as ``connect(..., schema_registry="http://host:8081")``.

>>> lab = streamlab.connect("lab-data")
>>> schema_id = lab.schemas.register("clicks-value", {"type": "record", "name": "Click",
...     "fields": [{"name": "user", "type": "string"}]})
>>> lab.schemas.decode(lab.schemas.encode({"user": "ada"}, schema_id))
{'user': 'ada'}
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamlab.errors import InvalidSchemaError
from streamlab.model.schemas.registry import Version, check_subject, parse_version
from streamlab.model.schemas.types import (
    CompatibilityLevel,
    RegisteredSchema,
    Schema,
    SchemaReference,
    compatibility_level,
    schema_type,
)
from streamlab.model.schemas.wire import ConfluentCodec
from streamlab.port.schemas import SchemaRegistryPort

__all__ = ["Compatibility", "RegisteredSchema", "Schema", "SchemaReference", "Schemas"]


@dataclass(frozen=True, slots=True)
class Compatibility:
    """The answer of :meth:`Schemas.check_compatibility`: true when compatible; ``messages``
    say why not."""

    is_compatible: bool
    level: str
    messages: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.is_compatible


def _schema(schema: str | Mapping[str, Any] | list[Any] | Schema, kind: str,
            references: Iterable[SchemaReference | Mapping[str, Any]] | None) -> Schema:  # fmt: skip
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, Mapping | list):
        text = json.dumps(schema)
    elif isinstance(schema, str):
        text = schema
    else:
        raise InvalidSchemaError(f"a schema is its text (str) or, for Avro and JSON Schema, a dict; got {schema!r}")
    refs = tuple(r if isinstance(r, SchemaReference) else SchemaReference.from_json(dict(r)) for r in references or ())
    return Schema(text, schema_type(kind), refs)


class Schemas:
    """Register, look up and check schemas; encode and decode Confluent's wire format."""

    def __init__(self, port: SchemaRegistryPort) -> None:
        # Found, not imported: importing jsonschema can take seconds, and not every use needs it.
        for needed in ("avro", "fastavro", "jsonschema"):
            if importlib.util.find_spec(needed) is None:
                raise ModuleNotFoundError(f"lab.schemas needs {needed}: pip install 'streamlab[registry]'", name=needed)
        self.port = port
        self.codec = ConfluentCodec(port.schema, port.resolve)  # decode_rows: replay's many payloads at once

    def __repr__(self) -> str:
        return f"<streamlab.Schemas {len(self.subjects())} subject(s)>"

    def register(
        self,
        subject: str,
        schema: str | Mapping[str, Any] | Schema,
        schema_type: str = "AVRO",
        references: Iterable[SchemaReference | Mapping[str, Any]] | None = None,
    ) -> int:
        """Register ``schema`` (its text, or a dict for Avro and JSON Schema) under ``subject``
        as the next version; returns its global id. The same schema again returns the same
        id; one that breaks the subject's compatibility level raises IncompatibleSchemaError.
        ``schema_type``: ``"AVRO"``, ``"JSON"`` (JSON Schema) or ``"PROTOBUF"``."""
        return self.port.register(check_subject(subject), _schema(schema, schema_type, references)).id

    def get(self, schema_id: int) -> Schema:
        """The schema with global id ``schema_id`` (SchemaNotFoundError if none)."""
        if isinstance(schema_id, bool) or not isinstance(schema_id, int):
            raise InvalidSchemaError(f"a schema id is an int, got {schema_id!r}")
        return self.port.schema(schema_id)

    def latest(self, subject: str) -> RegisteredSchema:
        """The latest version of ``subject`` (SubjectNotFoundError if none)."""
        return self.port.version(subject, "latest")

    def version(self, subject: str, version: int | str) -> RegisteredSchema:
        """Version ``version`` (a number or ``"latest"``) of ``subject``."""
        return self.port.version(subject, parse_version(version))

    def versions(self, subject: str) -> list[int]:
        return self.port.versions(subject)

    def subjects(self) -> list[str]:
        return self.port.subjects()

    def check_compatibility(
        self,
        subject: str,
        schema: str | Mapping[str, Any] | Schema,
        schema_type: str = "AVRO",
        references: Iterable[SchemaReference | Mapping[str, Any]] | None = None,
        *,
        version: int | str | None = None,
    ) -> Compatibility:
        """Whether ``schema`` could be registered under ``subject`` now: checked against the
        versions its compatibility level names (or against ``version`` alone)."""
        wanted: Version | None = None if version is None else parse_version(version)
        problems = self.port.check(subject, _schema(schema, schema_type, references), wanted)
        return Compatibility(not problems, self.port.level(subject), problems)

    def compatibility(self, subject: str | None = None) -> str:
        """The compatibility level of ``subject`` (its own, else the global one), or the global one."""
        return self.port.level(subject)

    def set_compatibility(self, level: CompatibilityLevel | str, subject: str | None = None) -> str:
        """Set the compatibility level of ``subject``, or the global one: BACKWARD (the default),
        BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE or NONE."""
        checked = compatibility_level(level)
        return self.port.set_level(checked, None if subject is None else check_subject(subject)) or checked

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete ``subject`` (its ids keep decoding); ``permanent=True`` after a soft
        delete removes it. Returns the versions deleted."""
        return self.port.delete_subject(subject, permanent=permanent)

    # Confluent's wire format ----------------------------------------------------------------
    def decode(self, payload: bytes) -> Any:
        """The value in a Confluent-framed ``payload`` (magic byte 0, schema id, Avro or JSON
        or Protobuf): dicts for records. Raises SchemaDecodeError, SchemaNotFoundError."""
        return self.codec.decode(payload)

    def encode(self, value: Any, schema_id: int) -> bytes:
        """``value`` in Confluent's wire format under registered schema ``schema_id`` (Avro
        with fastavro; JSON Schema validated with jsonschema). Raises SchemaDecodeError."""
        return self.codec.encode(value, schema_id)
