"""A Schema Registry over HTTP for ``kafka://`` labs, through confluent-kafka's
``SchemaRegistryClient``: Confluent's registry, Redpanda's, Apicurio's Confluent-compatible
API, or ``streamlab serve --schema-registry-port``. Implements
:class:`streamlab.port.schemas.SchemaRegistryPort`; the registry's errors become streamlab's
SchemaRegistryError subclasses by their Confluent error code.
"""

from __future__ import annotations

from typing import Any, NoReturn

from streamlab.errors import (
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    InvalidVersionError,
    ReferenceExistsError,
    SchemaNotFoundError,
    SchemaRegistryError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
)
from streamlab.model.schemas.registry import Version
from streamlab.model.schemas.types import RegisteredSchema, Schema, SchemaReference, schema_type

_ERRORS: dict[int, type[SchemaRegistryError]] = {
    cls.error_code: cls
    for cls in (
        SubjectNotFoundError, VersionNotFoundError, SchemaNotFoundError, SubjectSoftDeletedError,
        SubjectNotSoftDeletedError, VersionNotSoftDeletedError, IncompatibleSchemaError, InvalidSchemaError,
        InvalidVersionError, InvalidCompatibilityLevelError, ReferenceExistsError,
    )
}  # fmt: skip


def _raise(exc: Any, url: str) -> NoReturn:
    code = getattr(exc, "error_code", None)
    cls = _ERRORS.get(code, SchemaRegistryError) if isinstance(code, int) else SchemaRegistryError
    raise cls(f"{getattr(exc, 'error_message', exc)} (schema registry {url})") from None


class ConfluentRegistry:
    """``SchemaRegistryClient`` behind :class:`~streamlab.port.schemas.SchemaRegistryPort`."""

    def __init__(self, url: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError

        self.url = url
        self.client = SchemaRegistryClient({"url": url})
        self._error = SchemaRegistryError

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except self._error as exc:
            _raise(exc, self.url)

    @staticmethod
    def _to_client(schema: Schema) -> Any:
        from confluent_kafka.schema_registry import Schema as ClientSchema
        from confluent_kafka.schema_registry import SchemaReference as ClientReference

        refs = [ClientReference(r.name, r.subject, r.version) for r in schema.references]
        return ClientSchema(schema.schema, schema.schema_type, refs)

    @staticmethod
    def _from_client(schema: Any) -> Schema:
        refs = tuple(SchemaReference(r.name, r.subject, r.version) for r in schema.references or [])
        return Schema(schema.schema_str, schema_type(schema.schema_type or "AVRO"), refs)

    def _registered(self, found: Any) -> RegisteredSchema:
        return RegisteredSchema(found.schema_id, found.subject, found.version, self._from_client(found.schema))

    def register(self, subject: str, schema: Schema) -> RegisteredSchema:
        client_schema = self._to_client(schema)
        schema_id = self._call("register_schema", subject, client_schema)
        found = self._call("lookup_schema", subject, client_schema)
        return RegisteredSchema(schema_id, subject, found.version, self._from_client(found.schema))

    def schema(self, schema_id: int) -> Schema:
        return self._from_client(self._call("get_schema", schema_id))

    def version(self, subject: str, version: Version, *, deleted: bool = False) -> RegisteredSchema:
        if version == "latest" and not deleted:
            return self._registered(self._call("get_latest_version", subject))
        return self._registered(self._call("get_version", subject, version, deleted))

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        return list(self._call("get_versions", subject, deleted=deleted))

    def subjects(self, *, deleted: bool = False) -> list[str]:
        return sorted(self._call("get_subjects", deleted=deleted))

    def check(self, subject: str, schema: Schema, version: Version | None = None) -> list[str]:
        client_schema = self._to_client(schema)
        if version is None:
            ok = self._call("test_compatibility_all_versions", subject, client_schema)
        else:
            ok = self._call("test_compatibility", subject, client_schema, version)
        return [] if ok else [f"incompatible with {subject} under its compatibility level (see the registry)"]

    def level(self, subject: str | None = None) -> str:
        return str(self._call("get_compatibility", subject))

    def set_level(self, level: str | None, subject: str | None = None) -> str | None:
        if level is None:
            self._call("delete_config", subject)
            return None
        result = self._call("set_compatibility", subject, level)
        return str(result.get("compatibility", level)) if isinstance(result, dict) else level

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        return list(self._call("delete_subject", subject, permanent))

    def resolve(self, ref: SchemaReference) -> Schema:
        return self.version(ref.subject, ref.version, deleted=True).schema

    def close(self) -> None:
        self.client.close()
