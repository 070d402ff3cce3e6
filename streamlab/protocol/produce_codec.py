"""Produce requests read, and their answers written, without kio's generic codec.

A producer sends Produce requests by the thousand, and the event loop that reads them also
hands every answer back: kio walks its schema field by field in Python, which cost the
loop about 90 µs per Produce (reading, checking the array counts, writing the answer),
time the thread storing the records waits for the GIL. Produce's layout is small and fixed
for the versions served (v3-v9, flexible from v9), so it is read and written here
directly, with the checks :mod:`streamlab.server.requests` makes on every other request:
a count or length that overruns the frame, a null where the schema has none, or a
truncated frame is an :class:`~streamlab.protocol.framing.InvalidRequestError`; bytes after
a complete body are ignored, as Kafka ignores them. The tests hold both directions to kio
on every version.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from streamlab.protocol.framing import InvalidRequestError, ParsedRequest
from streamlab.protocol.varint import Malformed, read_uvarint, uvarint

__all__ = [
    "FIRST_FLEXIBLE_VERSION",
    "PartitionAnswer",
    "PartitionData",
    "ProduceRequestBody",
    "TopicData",
    "encode_produce_response",
    "read_produce_request",
]

API_KEY: Final = 0
FIRST_FLEXIBLE_VERSION: Final = 9
_HEADER = struct.Struct(">hhi")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")
_PARTITION_V3 = struct.Struct(">ihqq")  # index, error code, base offset, log append time
_LOG_START = struct.Struct(">q")


@dataclass(frozen=True, slots=True)
class PartitionData:
    index: int
    records: bytes | None


@dataclass(frozen=True, slots=True)
class TopicData:
    name: str
    partition_data: tuple[PartitionData, ...]


@dataclass(frozen=True, slots=True)
class ProduceRequestBody:
    """The fields of a Produce request, named as kio names them."""

    transactional_id: str | None
    acks: int
    timeout_ms: int
    topic_data: tuple[TopicData, ...]


class _Reader:
    """A cursor over one frame; every read checks that the frame holds it."""

    __slots__ = ("buf", "flexible", "pos")

    def __init__(self, buf: bytes, pos: int, flexible: bool) -> None:
        self.buf, self.pos, self.flexible = buf, pos, flexible

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > len(self.buf):
            raise Malformed(f"{n} bytes at byte {start} overrun the {len(self.buf)}-byte frame")
        self.pos = start + n
        return start

    def fixed(self, shape: struct.Struct) -> tuple[int, ...]:
        return shape.unpack_from(self.buf, self.take(shape.size))

    def uvarint(self) -> int:
        value, self.pos = read_uvarint(self.buf, self.pos)
        return value

    def sized(self, legacy: struct.Struct) -> int:
        """A length or count, -1 for null: an unsigned varint of it plus one in flexible
        versions, else ``legacy`` (int16 for strings, int32 for bytes and arrays)."""
        return self.uvarint() - 1 if self.flexible else self.fixed(legacy)[0]

    def count(self, name: str, smallest_item: int) -> int:
        """An array's element count, refused when null or when that many could not fit."""
        n = self.sized(_INT32)
        if n < 0:
            raise Malformed(f"{name} is null")
        if n * smallest_item > len(self.buf) - self.pos:
            raise Malformed(f"{name} claims {n} elements, more than the frame holds")
        return n

    def string(self, name: str, *, nullable: bool) -> str | None:
        n = self.sized(_INT16)
        if n < 0:
            if nullable:
                return None
            raise Malformed(f"{name} is null")
        start = self.take(n)
        try:
            return self.buf[start : start + n].decode()
        except UnicodeDecodeError as exc:
            raise Malformed(f"{name} is not UTF-8: {exc}") from None

    def records(self) -> bytes | None:
        n = self.sized(_INT32)
        if n < 0:
            return None
        start = self.take(n)
        return self.buf[start : start + n]

    def skip_tags(self) -> None:
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def read_produce_request(frame: bytes, api_version: int, correlation_id: int) -> ParsedRequest:
    """A Produce request of a served version (the caller checked ``api_version``), header
    and body; raises :class:`InvalidRequestError` if it is malformed."""
    flexible = api_version >= FIRST_FLEXIBLE_VERSION
    reader = _Reader(frame, _HEADER.size, flexible=False)  # the header's client id is never compact
    try:
        client_id = reader.string("client_id", nullable=True)
        reader.flexible = flexible
        reader.skip_tags()
        transactional_id = reader.string("transactional_id", nullable=True)
        acks, timeout_ms = reader.fixed(_ACKS_TIMEOUT)
        topics = []
        for _ in range(reader.count("topic_data", 2 if flexible else 6)):
            name = reader.string("topic_data.name", nullable=False)
            partitions = []
            for _ in range(reader.count("topic_data.partition_data", 5 if flexible else 8)):
                (index,) = reader.fixed(_INT32)
                partitions.append(PartitionData(index, reader.records()))
                reader.skip_tags()
            reader.skip_tags()
            assert name is not None
            topics.append(TopicData(name, tuple(partitions)))
        reader.skip_tags()
    except Malformed as exc:
        raise InvalidRequestError(
            f"malformed Produce v{api_version} request: {exc}",
            correlation_id=correlation_id, api_key=API_KEY, api_version=api_version,
        ) from None  # fmt: skip
    body = ProduceRequestBody(transactional_id, acks, timeout_ms, tuple(topics))
    return ParsedRequest(API_KEY, api_version, correlation_id, client_id, body)


@dataclass(frozen=True, slots=True)
class PartitionAnswer:
    index: int
    error_code: int
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error_message: str | None = None


def encode_produce_response(
    api_version: int, correlation_id: int, topics: Sequence[tuple[str, Sequence[PartitionAnswer]]]
) -> bytes:
    """The whole response frame (size prefix, header, body) with no throttling; the same
    bytes kio writes for the same answer."""
    flexible = api_version >= FIRST_FLEXIBLE_VERSION
    out = [b"", _INT32.pack(correlation_id) + (b"\0" if flexible else b"")]
    add = out.append
    add(_array_length(len(topics), flexible))
    for name, partitions in topics:
        add(_string(name, flexible))
        add(_array_length(len(partitions), flexible))
        for p in partitions:
            add(_PARTITION_V3.pack(p.index, p.error_code, p.base_offset, p.log_append_time_ms))
            if api_version >= 5:
                add(_LOG_START.pack(p.log_start_offset))
            if api_version >= 8:
                add(_array_length(0, flexible))  # record_errors
                add(_nullable_string(p.error_message, flexible))
            if flexible:
                add(b"\0")
        if flexible:
            add(b"\0")
    add(_INT32.pack(0))  # throttle_time_ms
    if flexible:
        add(b"\0")
    body = b"".join(out)
    return _INT32.pack(len(body)) + body


def _array_length(n: int, flexible: bool) -> bytes:
    return uvarint(n + 1) if flexible else _INT32.pack(n)


def _string(value: str, flexible: bool) -> bytes:
    data = value.encode()
    return (uvarint(len(data) + 1) if flexible else _INT16.pack(len(data))) + data


def _nullable_string(value: str | None, flexible: bool) -> bytes:
    if value is None:
        return b"\0" if flexible else _INT16.pack(-1)
    return _string(value, flexible)
