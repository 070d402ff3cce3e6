"""How a topic's keys and values are read, the same in ``replay``, ``sql``, ``poll``,
``browse``, the CLI and the widgets.

A call's ``key_format=``/``value_format=`` wins; a call that does not say (None) reads
the topic's own formats, the topic configs ``streamlab.key.format`` and
``streamlab.value.format`` (``lab.set_format``; default ``"auto"``):

- ``"auto"``: Confluent-framed keys and values decoded through the Schema Registry, JSON
  objects spread into fields, anything else as stored;
- ``"avro"``, ``"protobuf"``, ``"jsonschema"``: every value read as that registry format:
  a Confluent-framed one by its schema id (a schema of another type is an error), an
  unframed one with the latest schema of ``<topic>-value`` (``<topic>-key`` for keys), as
  written by producers that leave the framing out (plain JSON for ``"jsonschema"``). A
  value starting with byte 0 and at least 5 bytes long is taken as framed;
- ``"json"``, ``"string"``, ``"bytes"``: see :func:`streamlab.front.replay_frame.with_formats`.

A value that does not read as asked keeps its stored value and says why in
``value_error``; a key that does not stays as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from streamlab.config import KEY_FORMAT_CONFIG, RECORD_FORMATS, VALUE_FORMAT_CONFIG
from streamlab.errors import ConfigError, SchemaDecodeError, StreamlabError, UnsupportedOperationError
from streamlab.front.registry_frame import decode_registry_keys, decode_registry_values
from streamlab.front.replay_frame import RAW_FORMATS, read_cell, spread_fields, with_formats
from streamlab.model.schemas.wire import frame as confluent_frame
from streamlab.model.schemas.wire import is_confluent, schema_id
from streamlab.model.serde import loads
from streamlab.model.types import Record
from streamlab.port.backend import Backend

if TYPE_CHECKING:
    from streamlab.front.schemas import Schemas

SCHEMA_FORMATS = {"avro": "AVRO", "protobuf": "PROTOBUF", "jsonschema": "JSON"}  # format -> schema type
Reader = Callable[[Any], Any]  # one key or value read as a format (raises StreamlabError)
SchemasFactory = Callable[[], "Schemas | None"]  # the lab's registry, None when none is in use


def check_format(which: str, fmt: object) -> str | None:
    if fmt is not None and fmt not in RECORD_FORMATS:
        raise ConfigError(f"{which} must be one of {', '.join(map(repr, RECORD_FORMATS))} (or None: the "
                          f"topic's own), got {fmt!r}")  # fmt: skip
    return fmt


def topic_formats(backend: Backend, topic: str) -> tuple[str, str]:
    """The (key, value) formats ``topic`` is read with when a call does not say."""
    try:
        config = backend.topic_config(topic)
    except StreamlabError:
        return "auto", "auto"  # an unknown topic: the read itself will say so
    found = (config.get(KEY_FORMAT_CONFIG), config.get(VALUE_FORMAT_CONFIG))
    key, value = (str(f) if f in RECORD_FORMATS else "auto" for f in found)
    return key, value


class SchemaReader:
    """Reads one topic's keys or values as ``fmt`` (``"avro"``, ``"protobuf"`` or
    ``"jsonschema"``): framed ones by their schema id, unframed ones with the latest schema
    of ``<topic>-<side>``, looked up once."""

    def __init__(self, schemas: SchemasFactory, topic: str, side: str, fmt: str) -> None:
        self._schemas, self._subject, self._fmt = schemas, f"{topic}-{side}", fmt
        self._type = SCHEMA_FORMATS[fmt]
        self._kinds: dict[int, str] = {}
        self._latest: list[int | StreamlabError] = []

    def _registry(self) -> Schemas:
        schemas = self._schemas()
        if schemas is None:
            raise SchemaDecodeError(f"{self._fmt} needs a Schema Registry and none is in use here")
        return schemas

    def _framed(self, schemas: Schemas, data: bytes) -> Any:
        sid = schema_id(data)
        kind = self._kinds.get(sid)
        if kind is None:
            kind = self._kinds[sid] = schemas.get(sid).schema_type
        if kind != self._type:
            raise SchemaDecodeError(f"schema id {sid} is {kind}, not {self._type} ({self._fmt!r} was asked)")
        return schemas.decode(data)

    def _latest_id(self, schemas: Schemas) -> int:
        if not self._latest:
            try:
                latest = schemas.latest(self._subject)
                if latest.schema.schema_type != self._type:
                    raise SchemaDecodeError(f"the latest schema of {self._subject} is {latest.schema.schema_type}, "
                                            f"not {self._type}")  # fmt: skip
                self._latest.append(latest.id)
            except StreamlabError as exc:
                self._latest.append(exc)
        found = self._latest[0]
        if isinstance(found, StreamlabError):
            raise found
        return found

    def __call__(self, data: Any) -> Any:
        if data is None:
            return None
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, bytes):
            raise SchemaDecodeError(f"not {self._fmt}: {type(data).__name__} {data!r}")
        schemas = self._registry()
        if is_confluent(data):
            # Taken as framed: read unframed, bytes that only start like a frame (magic byte 0)
            # would decode into a wrong record rather than fail
            return self._framed(schemas, data)
        if self._type == "JSON":
            try:
                return loads(data)
            except ValueError:
                raise SchemaDecodeError("not JSON") from None
        # Protobuf without framing has no message indexes: the first message of the schema
        body = data if self._type == "AVRO" else b"\x00" + data
        return schemas.decode(confluent_frame(self._latest_id(schemas), body))


def read_frame(
    frame: pd.DataFrame,
    *,
    key_format: str,
    value_format: str,
    raw: bool,
    registry: Callable[[], Reader | None],
    reader: Callable[[str, str], Reader],
    decode_keys: bool,
) -> pd.DataFrame:
    """``frame`` (replay-shaped; read with stored values when ``value_format`` needs them,
    see :func:`needs_stored`) with keys and values read as asked. ``registry()`` decodes
    Confluent-framed payloads ("auto"), ``reader(side, fmt)`` reads a schema format;
    ``decode_keys`` decodes framed keys under "auto" (a raw replay keeps their bytes)."""
    if decode_keys and key_format == "auto":
        frame = decode_registry_keys(frame, registry)
    if value_format == "auto":
        frame = decode_registry_values(frame, registry, raw=raw, keys=False)
    elif value_format in SCHEMA_FORMATS and "value" in frame.columns:
        read = reader("value", value_format)
        frame = decode_registry_values(spread_fields(frame, drop=True), lambda: read, raw=raw, keys=False,
                                       select=lambda v: v is not None and v is not pd.NA)  # fmt: skip
    if key_format in SCHEMA_FORMATS and "key" in frame.columns:
        read = reader("key", key_format)
        frame["key"] = pd.Series([_or_raw(read, k) for k in frame["key"]], index=frame.index, dtype=object)
    return with_formats(frame, key_format=_plain(key_format), value_format=_plain(value_format), raw=raw)


def needs_stored(value_format: str) -> bool:
    """Whether a replay read as ``value_format`` starts from the stored values (no fields spread)."""
    return value_format in RAW_FORMATS or value_format in SCHEMA_FORMATS


def read_one(data: Any, fmt: str, *, registry: Callable[[], Reader | None], reader: Callable[[], Reader]) -> Any:
    """One polled key or value (as the consumer decoded it) read as ``fmt`` (raises StreamlabError)."""
    if fmt == "auto":
        if not (isinstance(data, bytes) and is_confluent(data)):
            return data
        decode = registry()
        return data if decode is None else decode(data)
    if fmt in SCHEMA_FORMATS:
        return reader()(data)
    cell, error = read_cell(data, fmt)
    if error is not None:
        raise SchemaDecodeError(error)
    return cell


def _or_raw(read: Reader, data: Any) -> Any:
    try:
        return read(data)
    except StreamlabError:
        return data


def _plain(fmt: str) -> str:
    """What :func:`with_formats` still has to do once the schema formats are read."""
    return "auto" if fmt in SCHEMA_FORMATS else fmt


class TopicFormatDecoder:
    """What ``Lab.consumer`` hands its consumer (:class:`streamlab.port.record_decode.RecordDecoder`):
    ``poll()``'s keys and values read with each topic's formats (``formats(topic)``, looked
    up once per topic), Confluent-framed ones under "auto" decoded through the lab's registry
    (Avro records as dicts, logical timestamps as datetimes); ``poll_frame()``'s as replay
    reads them. A record that does not read (an unknown schema id, bytes that only start
    like a framed payload) keeps what it was; the registry is looked up on first need, so
    topics without framed records never touch it."""

    def __init__(
        self,
        registry: Callable[[], Reader | None],
        formats: Callable[[str], tuple[str, str]],
        schemas: SchemasFactory,
    ) -> None:
        self._factory, self._formats, self._schemas = registry, formats, schemas
        self._decoder: list[Reader | None] = []  # made once, on first use
        self._by_topic: dict[str, tuple[str, str]] = {}
        self._readers: dict[tuple[str, str, str], SchemaReader] = {}
        self._lock = threading.Lock()

    def _decode(self) -> Reader | None:
        with self._lock:
            if not self._decoder:
                try:
                    self._decoder.append(self._factory())
                except (StreamlabError, ModuleNotFoundError):  # a closed lab; the registry extra missing
                    self._decoder.append(None)
            return self._decoder[0]

    def _registry(self) -> Schemas | None:
        try:
            return self._schemas()
        except ModuleNotFoundError:
            return None

    def formats(self, topic: str) -> tuple[str, str]:
        with self._lock:
            found = self._by_topic.get(topic)
        if found is None:
            found = self._formats(topic)
            with self._lock:
                self._by_topic[topic] = found
        return found

    def reader(self, topic: str, side: str, fmt: str) -> Reader:
        with self._lock:
            found = self._readers.get((topic, side, fmt))
            if found is None:
                found = self._readers[topic, side, fmt] = SchemaReader(self._registry, topic, side, fmt)
            return found

    def _one(self, data: Any, topic: str, side: str, fmt: str) -> Any:
        if data is None:
            return None
        try:
            return read_one(data, fmt, registry=self._decode, reader=lambda: self.reader(topic, side, fmt))
        except StreamlabError:
            return data

    def records(self, records: list[Record]) -> list[Record]:
        out = records
        for i, record in enumerate(records):
            key_format, value_format = self.formats(record.topic)
            key = self._one(record.key, record.topic, "key", key_format)
            value = self._one(record.value, record.topic, "value", value_format)
            if key is not record.key or value is not record.value:
                if out is records:
                    out = list(records)
                out[i] = record._replace(key=key, value=value)
        return out

    def _read_topic(self, topic: str, frame: pd.DataFrame, *, raw: bool) -> pd.DataFrame:
        key_format, value_format = self.formats(topic)

        def reader(side: str, fmt: str) -> Reader:
            return self.reader(topic, side, fmt)

        return read_frame(frame, key_format=key_format, value_format=value_format, raw=raw, registry=self._decode,
                          reader=reader, decode_keys=not raw)  # fmt: skip

    def frame(self, frame: pd.DataFrame, *, raw: bool) -> pd.DataFrame:
        if "topic" not in frame.columns or frame.empty:
            return decode_registry_values(frame, self._decode, raw=raw)
        parts = []
        for topic, part in frame.groupby("topic", sort=False):
            parts.append(self._read_topic(str(topic), part.copy(), raw=raw))
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


class TopicFormats:
    """A lab's side of all this: the formats it keeps for its topics (``lab.set_format``),
    the formats a call reads with, and its Schema Registry (``schemas()``, used only when
    the backend has one) put to work on replay's and browse's frames and on consumers."""

    def __init__(self, backend: Backend, schemas: Callable[[], Schemas]) -> None:
        self._backend, self._schemas = backend, schemas

    def keep(self, topic: str, key_format: str | None, value_format: str | None) -> None:
        """Store ``topic``'s own formats as its topic configs (see ``Lab.set_format``)."""
        changes = {name: check_format(which, fmt) for name, which, fmt in (
            (KEY_FORMAT_CONFIG, "key_format", key_format), (VALUE_FORMAT_CONFIG, "value_format", value_format),
        ) if fmt is not None}  # fmt: skip
        if not changes:
            raise ConfigError("set_format needs key_format=, value_format= or both")
        self._backend.alter_topic_config(topic, changes)
        kept = self._backend.topic_config(topic)
        if any(kept.get(name) != fmt for name, fmt in changes.items()):  # a cluster that drops unknown configs
            raise UnsupportedOperationError(
                f"this cluster does not keep the topic configs {sorted(changes)}: pass key_format=/value_format= "
                "per call (replay, browse, consumer) instead"
            )

    def resolve(self, topic: str, key_format: str | None, value_format: str | None) -> tuple[str, str]:
        """The (key, value) formats a call reads ``topic`` with: its own where it says None."""
        key, value = check_format("key_format", key_format), check_format("value_format", value_format)
        if key is None or value is None:
            own = topic_formats(self._backend, topic)
            key, value = key or own[0], value or own[1]
        return key, value

    def read(
        self, topic: str, frame: pd.DataFrame, key_format: str, value_format: str, *, raw: bool, decode_keys: bool
    ) -> pd.DataFrame:
        """:func:`read_frame` with this lab's registry."""
        return read_frame(frame, key_format=key_format, value_format=value_format, raw=raw,
                          registry=self._registry_decoder, decode_keys=decode_keys,
                          reader=lambda side, fmt: SchemaReader(self._registry, topic, side, fmt))  # fmt: skip

    def consumer_decoder(self, key_format: str | None, value_format: str | None) -> TopicFormatDecoder | None:
        """What ``Lab.consumer`` hands its consumer; None when both sides stay bytes."""
        check_format("key_format", key_format)
        check_format("value_format", value_format)
        if key_format == value_format == "bytes" or (key_format is None and value_format == "bytes"):
            return None

        def formats(topic: str) -> tuple[str, str]:
            own = topic_formats(self._backend, topic) if key_format is None or value_format is None else ("", "")
            return key_format or own[0], value_format or own[1]

        return TopicFormatDecoder(self._registry_decoder, formats, self._registry)

    def _registry(self) -> Schemas | None:
        return self._schemas() if self._backend.has_schema_registry() else None

    def _registry_decoder(self) -> Callable[[bytes], Any] | None:
        """Decodes Confluent-framed values through the lab's registry; None when no registry
        is in use (reading never creates one)."""
        return self._schemas().codec if self._backend.has_schema_registry() else None
