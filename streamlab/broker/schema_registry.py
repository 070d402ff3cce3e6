"""The Schema Registry's durable store: the compacted ``_schemas`` topic of the data
directory, as Confluent's and Redpanda's registries keep theirs.

Every change is written to the topic (fsynced) before it is applied to the in-memory
:class:`~streamlab.model.schemas.registry.RegistryState`; opening the store reads the topic
from its start, so subjects, versions, ids and config survive restarts, and whoever opens
the directory next (``streamlab serve`` or an embedded ``connect(dir)``) sees the same
registry. One store per open broker: the served REST API and an embedded ``lab.schemas``
of the same process share it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Final, TypeVar

import orjson

from streamlab.broker.core import Broker
from streamlab.broker.produce import append
from streamlab.broker.topics import create_topic
from streamlab.errors import StreamlabError
from streamlab.model.schema import build_batch
from streamlab.model.schemas.registry import Change, RegistryState, Version
from streamlab.model.schemas.types import CompatibilityLevel, RegisteredSchema, Schema, SchemaReference
from streamlab.model.serde import FMT_CONTROL, FMT_JSON, FMT_NULL

log = logging.getLogger("streamlab.broker.schema_registry")
SCHEMAS_TOPIC: Final = "_schemas"
SCHEMAS_TOPIC_CONFIG: Final = {"cleanup.policy": "compact"}  # each key's latest record is its state
READ_CHUNK = 10_000

T = TypeVar("T")

_stores: weakref.WeakKeyDictionary[Broker, SchemaStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def schema_store(broker: Broker) -> SchemaStore:
    """The broker's store, opened (and the ``_schemas`` topic created) on first use."""
    with _stores_lock:
        store = _stores.get(broker)
        if store is None:
            store = _stores[broker] = SchemaStore(broker)
        return store


class SchemaStore:
    """Thread-safe; every method may raise the SchemaRegistryError subclasses of the REST API."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._lock = threading.Lock()
        self.state = RegistryState()
        with broker.lock:
            if SCHEMAS_TOPIC not in broker.topics:
                create_topic(broker, SCHEMAS_TOPIC, 1, SCHEMAS_TOPIC_CONFIG)
        self._load()

    def _load(self) -> None:
        partition_log = self._broker.log(SCHEMAS_TOPIC, 0)
        offset = partition_log.log_start_offset
        while offset < partition_log.high_watermark:
            table = partition_log.read(offset, READ_CHUNK)
            if not table.num_rows:
                break
            names = ("offset", "key", "key_format", "value", "value_format")
            for at, key, key_format, value, value_format in zip(
                *(table.column(n).to_pylist() for n in names), strict=True
            ):
                self._apply_stored(at, key, key_format, value, value_format)
            offset = table.column("offset")[-1].as_py() + 1

    def _apply_stored(self, offset: int, key: bytes | None, key_format: int, value: bytes | None,
                      value_format: int) -> None:  # fmt: skip
        if key is None or key_format == FMT_CONTROL:
            return  # transaction markers; keyless records are not the registry's
        try:
            parsed_key = orjson.loads(key)
            parsed_value = None if value is None or value_format == FMT_NULL else orjson.loads(value)
        except orjson.JSONDecodeError:
            return  # a record some other client wrote: not the registry's
        if isinstance(parsed_key, dict) and (parsed_value is None or isinstance(parsed_value, dict)):
            try:
                self.state.apply(parsed_key, parsed_value)
            except (StreamlabError, KeyError, TypeError, ValueError) as exc:
                log.warning("%s: the record at offset %d is not a registry record, skipped: %s",
                            SCHEMAS_TOPIC, offset, exc)  # fmt: skip

    def _write(self, changes: list[Change]) -> None:
        if not changes:
            return
        now = int(time.time() * 1000)
        keys = [orjson.dumps(k) for k, _ in changes]
        values = [None if v is None else orjson.dumps(v) for _, v in changes]
        batch = build_batch(
            base_offset=0, timestamps=[now] * len(changes), keys=keys, key_formats=[FMT_JSON] * len(changes),
            values=values, value_formats=[FMT_NULL if v is None else FMT_JSON for v in values],
        )  # fmt: skip
        append(self._broker, SCHEMAS_TOPIC, 0, batch, sync=True)
        self._broker.notify_data()
        for key, value in changes:
            self.state.apply(key, value)

    def _read(self, read: Callable[[], T]) -> T:
        with self._lock:
            return read()

    # changes ------------------------------------------------------------------------------
    def register(self, subject: str, schema: Schema) -> RegisteredSchema:
        """Register ``schema`` under ``subject`` (the same schema again: the same id and version)."""
        with self._lock:
            registered, changes = self.state.plan_register(subject, schema)
            self._write(changes)
            return registered

    def delete_version(self, subject: str, version: Version, *, permanent: bool = False) -> int:
        with self._lock:
            deleted, changes = self.state.plan_delete_version(subject, version, permanent=permanent)
            self._write(changes)
            return deleted

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        with self._lock:
            versions, changes = self.state.plan_delete_subject(subject, permanent=permanent)
            self._write(changes)
            return versions

    def set_level(self, level: str | None, subject: str | None = None) -> CompatibilityLevel | None:
        """Set the compatibility level of ``subject`` (None: the global one); ``level=None`` removes it."""
        with self._lock:
            checked, changes = self.state.plan_config(level, subject)
            if subject is not None and level is None:
                self.state.versions(subject, deleted=True)  # SubjectNotFoundError for an unknown one
            self._write(changes)
            return checked

    # reads --------------------------------------------------------------------------------
    def subjects(self, *, deleted: bool = False) -> list[str]:
        return self._read(lambda: self.state.subjects(deleted=deleted))

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        return self._read(lambda: self.state.versions(subject, deleted=deleted))

    def version(self, subject: str, version: Version, *, deleted: bool = False) -> RegisteredSchema:
        return self._read(lambda: self.state.version(subject, version, deleted=deleted))

    def schema(self, schema_id: int) -> Schema:
        return self._read(lambda: self.state.schema(schema_id))

    def usages(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        return self._read(lambda: self.state.usages(schema_id, deleted=deleted))

    def lookup(self, subject: str, schema: Schema, *, deleted: bool = False) -> RegisteredSchema:
        return self._read(lambda: self.state.lookup(subject, schema, deleted=deleted))

    def resolve(self, ref: SchemaReference) -> Schema:
        return self._read(lambda: self.state.resolve(ref))

    def level(self, subject: str | None = None) -> CompatibilityLevel:
        return self._read(lambda: self.state.level(subject))

    def subject_level(self, subject: str) -> CompatibilityLevel | None:
        return self._read(lambda: self.state.subject_level(subject))

    def check(self, subject: str, schema: Schema, version: Version | None = None) -> list[str]:
        """Why ``schema`` would be refused under ``subject`` (empty: compatible)."""
        return self._read(lambda: self.state.check(subject, schema, version))
