"""A Schema Registry's state and rules, without I/O.

The state is what the records of the ``_schemas`` topic say, applied in order
(:meth:`RegistryState.apply`); an operation that changes it first *plans* the records to
write (``plan_*``), and the store (:mod:`streamlab.broker.schema_registry`) writes them
durably before applying them. The records are Confluent's: key
``{"keytype": "SCHEMA", "subject": s, "version": v, "magic": 1}`` with value
``{"subject", "version", "id", "schema", "schemaType", "references", "deleted"}`` (a null
value deletes permanently), and key ``{"keytype": "CONFIG", "subject": s | null, "magic": 0}``
with value ``{"compatibilityLevel": level}``; and streamlab's own
``{"keytype": "STREAMLAB_ID_HIGH_WATER"}`` with the highest id given. Compacted by key, the topic keeps each version's
latest state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from streamlab.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidVersionError,
    ReferenceExistsError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
)
from streamlab.model.schemas.compatibility import incompatibilities
from streamlab.model.schemas.parse import canonical, validate
from streamlab.model.schemas.types import (
    DEFAULT_LEVEL,
    CompatibilityLevel,
    RegisteredSchema,
    Schema,
    SchemaReference,
    compatibility_level,
)

Json = dict[str, Any]
Change = tuple[Json, Json | None]  # a record of the _schemas topic: key, value (None: tombstone)
Version = int | Literal["latest"]
# The highest id given so far, kept under its own key: once a schema is deleted permanently
# and compaction has removed its records, its id still is not given to another schema.
ID_KEY: Json = {"keytype": "STREAMLAB_ID_HIGH_WATER", "magic": 0}


@dataclass(frozen=True, slots=True)
class _Entry:
    registered: RegisteredSchema
    deleted: bool


def parse_version(value: object) -> Version:
    """A version from a URL: a positive integer, ``latest`` or ``-1`` (latest)."""
    if value in ("latest", "-1", -1):
        return "latest"
    text = str(value)
    if text.isdigit() and 0 < int(text) < 2**31:
        return int(text)
    raise InvalidVersionError(f"the version must be a positive integer or 'latest', got {value!r}")


def check_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject.strip() or any(ord(c) < 32 for c in subject):
        raise InvalidSchemaError(f"a subject is a non-empty name without control characters, got {subject!r}")
    return subject


class RegistryState:
    """Subjects, their versions, global schema ids and compatibility config."""

    def __init__(self) -> None:
        self._subjects: dict[str, dict[int, _Entry]] = {}
        self._config: dict[str | None, CompatibilityLevel] = {}
        self._max_id = 0

    # applying records -------------------------------------------------------------------
    def apply(self, key: Json, value: Json | None) -> None:
        """Apply one record of the ``_schemas`` topic (unknown key types are ignored, as
        Confluent's registry ignores Noop and other records it does not need)."""
        kind = key.get("keytype")
        if kind == "SCHEMA":
            subject, version = key["subject"], int(key["version"])
            versions = self._subjects.setdefault(subject, {})
            if value is None:
                versions.pop(version, None)
                if not versions:
                    del self._subjects[subject]
                return
            schema = Schema.from_json(value)
            registered = RegisteredSchema(int(value["id"]), subject, version, schema)
            versions[version] = _Entry(registered, bool(value.get("deleted", False)))
            self._max_id = max(self._max_id, registered.id)
        elif kind == ID_KEY["keytype"] and value is not None:
            self._max_id = max(self._max_id, int(value["id"]))
        elif kind == "CONFIG":
            if value is None or "compatibilityLevel" not in value:
                self._config.pop(key.get("subject"), None)
            else:
                self._config[key.get("subject")] = compatibility_level(value["compatibilityLevel"])

    @staticmethod
    def _schema_change(entry: _Entry) -> Change:
        r = entry.registered
        key = {"keytype": "SCHEMA", "subject": r.subject, "version": r.version, "magic": 1}
        value = {"subject": r.subject, "version": r.version, "id": r.id, "schemaType": r.schema.schema_type,
                 "schema": r.schema.schema, "references": [ref.to_json() for ref in r.schema.references],
                 "deleted": entry.deleted}  # fmt: skip
        return key, value

    # reading ----------------------------------------------------------------------------
    def subjects(self, *, deleted: bool = False) -> list[str]:
        return sorted(s for s, versions in self._subjects.items() if deleted or self._live(versions))

    @staticmethod
    def _live(versions: dict[int, _Entry]) -> list[_Entry]:
        return [versions[v] for v in sorted(versions) if not versions[v].deleted]

    def _entries(self, subject: str, *, deleted: bool) -> list[_Entry]:
        versions = self._subjects.get(subject, {})
        entries = [versions[v] for v in sorted(versions)] if deleted else self._live(versions)
        if not entries:
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        return entries

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        return [e.registered.version for e in self._entries(subject, deleted=deleted)]

    def version(self, subject: str, version: Version, *, deleted: bool = False) -> RegisteredSchema:
        entries = self._entries(subject, deleted=deleted)
        if version == "latest":
            return entries[-1].registered
        for entry in entries:
            if entry.registered.version == version:
                return entry.registered
        raise VersionNotFoundError(f"Version {version} not found.")

    def schema(self, schema_id: int) -> Schema:
        for registered in self._all():
            if registered.id == schema_id:
                return registered.schema
        raise SchemaNotFoundError(f"Schema {schema_id} not found")

    def usages(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        """(subject, version) pairs registered with ``schema_id``."""
        found = [(r.subject, r.version) for r in self._all(deleted=deleted) if r.id == schema_id]
        if not found and not any(r.id == schema_id for r in self._all(deleted=True)):
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return found

    def _all(self, *, deleted: bool = True) -> Iterable[RegisteredSchema]:
        for subject in sorted(self._subjects):
            versions = self._subjects[subject]
            for v in sorted(versions):
                if deleted or not versions[v].deleted:
                    yield versions[v].registered

    def resolve(self, ref: SchemaReference) -> Schema:
        """The schema a reference names (soft-deleted versions still resolve)."""
        return self.version(ref.subject, ref.version, deleted=True).schema

    def lookup(self, subject: str, schema: Schema, *, deleted: bool = False) -> RegisteredSchema:
        """The version of ``subject`` registered with ``schema`` (POST /subjects/{subject})."""
        entries = self._entries(subject, deleted=deleted)
        wanted = canonical(schema)
        for entry in reversed(entries):
            if entry.registered.schema == wanted:
                return entry.registered
        raise SchemaNotFoundError("Schema not found")

    def level(self, subject: str | None = None) -> CompatibilityLevel:
        """The subject's compatibility level, else the global one, else BACKWARD."""
        return self._config.get(subject) or self._config.get(None) or DEFAULT_LEVEL

    def subject_level(self, subject: str) -> CompatibilityLevel | None:
        return self._config.get(subject)

    # checks -----------------------------------------------------------------------------
    def check(self, subject: str, schema: Schema, version: Version | None = None) -> list[str]:
        """Why ``schema`` is incompatible with ``subject`` under its level: against the
        versions the level names (``version=None`` or ``"latest"``), or against ``version`` alone."""
        schema = canonical(schema)
        validate(schema, self.resolve)
        level = self.level(subject)
        if version is None or version == "latest":
            try:
                earlier = [e.registered.schema for e in self._entries(subject, deleted=False)]
            except SubjectNotFoundError:
                if version is None:
                    return []
                raise
            return incompatibilities(level, schema, earlier, self.resolve)
        old = self.version(subject, version).schema
        # against one version: what the level checks, without _TRANSITIVE
        return incompatibilities(compatibility_level(level.removesuffix("_TRANSITIVE")), schema, [old], self.resolve)

    # planning changes -------------------------------------------------------------------
    def plan_register(self, subject: str, schema: Schema) -> tuple[RegisteredSchema, list[Change]]:
        """The id (and version) ``schema`` gets under ``subject``, and the records that
        register it: none when it is already a live version of the subject. Raises
        InvalidSchemaError, IncompatibleSchemaError."""
        check_subject(subject)
        schema = canonical(schema)
        validate(schema, self.resolve)
        versions = self._subjects.get(subject, {})
        live = self._live(versions)
        for entry in live:
            if entry.registered.schema == schema:
                return entry.registered, []
        problems = incompatibilities(self.level(subject), schema, [e.registered.schema for e in live], self.resolve)
        if problems:
            raise IncompatibleSchemaError(
                f'Schema being registered is incompatible with an earlier schema for subject "{subject}", '
                f"details: {problems}"
            )
        schema_id = next((r.id for r in self._all() if r.schema == schema), self._max_id + 1)
        registered = RegisteredSchema(schema_id, subject, max(versions, default=0) + 1, schema)
        changes = [self._schema_change(_Entry(registered, False))]
        if schema_id > self._max_id:  # a new id: remembered apart, so it is never given again
            changes.append((ID_KEY, {"id": schema_id}))
        return registered, changes

    def plan_delete_version(self, subject: str, version: Version, *, permanent: bool) -> tuple[int, list[Change]]:
        registered = self.version(subject, version, deleted=permanent)
        entry = self._subjects[subject][registered.version]
        self._check_unreferenced(registered)
        if permanent:
            if not entry.deleted:
                raise VersionNotSoftDeletedError(
                    f"Subject '{subject}' Version {registered.version} was not deleted first before being "
                    "permanently deleted"
                )
            key, _ = self._schema_change(entry)
            return registered.version, [(key, None)]
        return registered.version, [self._schema_change(replace(entry, deleted=True))]

    def plan_delete_subject(self, subject: str, *, permanent: bool) -> tuple[list[int], list[Change]]:
        versions = self._subjects.get(subject)
        if not versions:
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        entries = [versions[v] for v in sorted(versions)]
        for entry in entries:
            self._check_unreferenced(entry.registered)
        if permanent:
            if any(not e.deleted for e in entries):
                raise SubjectNotSoftDeletedError(
                    f"Subject '{subject}' was not deleted first before being permanently deleted"
                )
            changes: list[Change] = [(self._schema_change(e)[0], None) for e in entries]
            if subject in self._config:
                changes.append(({"keytype": "CONFIG", "subject": subject, "magic": 0}, None))
            return [e.registered.version for e in entries], changes
        if all(e.deleted for e in entries):
            raise SubjectSoftDeletedError(
                f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
            )
        live = [e for e in entries if not e.deleted]
        return [e.registered.version for e in live], [self._schema_change(replace(e, deleted=True)) for e in live]

    def _check_unreferenced(self, target: RegisteredSchema) -> None:
        for registered in self._all(deleted=False):
            for ref in registered.schema.references:
                if ref.subject == target.subject and ref.version == target.version:
                    raise ReferenceExistsError(
                        f"One or more references exist to the schema {{subject={target.subject}, "
                        f"version={target.version}}}: {registered.subject} version {registered.version}"
                    )

    @staticmethod
    def plan_config(level: str | None, subject: str | None = None) -> tuple[CompatibilityLevel | None, list[Change]]:
        """Records setting (or, with ``level=None``, removing) a compatibility level."""
        if subject is not None:
            check_subject(subject)
        key = {"keytype": "CONFIG", "subject": subject, "magic": 0}
        if level is None:
            return None, [(key, None)]
        checked = compatibility_level(level)
        return checked, [(key, {"compatibilityLevel": checked})]
