"""Kafka request/response framing on top of kio's generated schemas (no I/O).

A request frame (the bytes after the 4-byte size prefix) is ``request header + body``.
The header is v1 (api_key, api_version, correlation_id, nullable client_id) for
non-flexible API versions and v2 (v1 plus tagged fields) for flexible ones. A response is
``size + response header + body`` with header v0 (correlation_id) or, for flexible
versions, v1 (plus tagged fields) -- except ApiVersions, whose response header is always
v0 so that a client can read it before it knows which versions the broker speaks.

Version ranges (:data:`SUPPORTED_APIS`)
---------------------------------------
Clients pick ``min(client max, broker max)`` per API, so each range must reach the
newest version a client expects and go low enough for feature probes:

* librdkafka enables features only if the broker range *overlaps* fixed versions:
  MsgVer2 needs Produce 3 and Fetch 4, ZSTD needs Produce 7 and Fetch 10, the balanced
  consumer needs FindCoordinator/JoinGroup/SyncGroup/Heartbeat/LeaveGroup 0, OffsetCommit
  1-2 and OffsetFetch 1, the idempotent producer needs InitProducerId 0, time-based
  offsets need ListOffsets 1. Hence the v0/v1 minimums.
* aiokafka bootstraps with Metadata v0, then v1, and FindCoordinator v0/v1: Metadata
  and FindCoordinator start at 0.
* The minimums cannot go below what kio (Kafka 4.x schemas) models: Produce 3, Fetch 4,
  ListOffsets 1, OffsetCommit 2, OffsetFetch 1, CreateTopics 2, DeleteTopics 1,
  DescribeConfigs 1, CreateAcls/DescribeAcls/DeleteAcls 1 (librdkafka's admin client uses 1).
* SaslHandshake goes down to 0 because librdkafka only sends a handshake to brokers whose
  range includes v0; clients pick v1, after which tokens travel in SaslAuthenticate.
* Maximums stop before versions that would need broker features streamlab lacks:
  Produce 9 (10-12 add leader-discovery tags and transactions v2, 13 names topics by ID),
  Fetch 12 (13+ name topics by ID only), OffsetCommit/OffsetFetch 9 (v9 carries the
  KIP-848 member epoch; 10+ name topics by ID), ListOffsets 7 (8+ are tiered-storage
  specs), InitProducerId 4 (5+ is transactions v2), DescribeGroups 5 (6 reports missing
  groups as errors, KIP-1043). The share-group APIs (KIP-932) start at v1, as
  librdkafka's share consumer sends them (v0 was Kafka 4.0's early-access version);
  ShareFetch/ShareAcknowledge v2 add lock renewal. ConsumerGroupHeartbeat and
  ConsumerGroupDescribe (KIP-848) serve v0-v1 (v1 adds the topic regex; librdkafka sends
  only v1). Elsewhere kio's newest version is used: later versions only add optional
  fields (reasons, echoed protocol names, zero topic IDs in responses).

Behaviour the server must provide within these ranges: Metadata v0 treats an empty topic
list as "all topics" (v1+ uses null); FindCoordinator v4 and OffsetFetch v8 batch several
keys/groups per request; LeaveGroup v3+ lists members; JoinGroup v4+ may answer
MEMBER_ID_REQUIRED; ListOffsets v7 accepts timestamp -3 (max timestamp); Metadata v12
and DeleteTopics v6 may name topics by ID only (answer UNKNOWN_TOPIC_ID -- clients only
do so with IDs we gave out, and responses carry the zero UUID).

:data:`ADVERTISED_APIS` is what ApiVersions should report. It equals
:data:`SUPPORTED_APIS` except Produce, advertised from v0 as Kafka 4 does (KAFKA-18659):
older librdkafka releases check gzip/snappy/lz4 support against Produce v0-v2 and would
otherwise send uncompressed batches (confluentinc/librdkafka#4956). Clients always pick
the highest common version, so v0-v2 are never sent; :func:`parse_request` still rejects
them.
"""

from __future__ import annotations

import datetime
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Final, cast

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.primitive import i16
from kio.static.protocol import ResponsePayload

from streamlab.errors import StreamlabError

__all__ = [
    "ADVERTISED_APIS",
    "API_NAMES",
    "SUPPORTED_APIS",
    "InvalidRequestError",
    "ParsedRequest",
    "ProtocolError",
    "UnsupportedVersionError",
    "api_versions_response",
    "encode_response",
    "parse_request",
]

API_NAMES: Final[dict[int, str]] = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    8: "OffsetCommit",
    9: "OffsetFetch",
    10: "FindCoordinator",
    11: "JoinGroup",
    12: "Heartbeat",
    13: "LeaveGroup",
    14: "SyncGroup",
    15: "DescribeGroups",
    16: "ListGroups",
    17: "SaslHandshake",
    18: "ApiVersions",
    19: "CreateTopics",
    20: "DeleteTopics",
    21: "DeleteRecords",
    22: "InitProducerId",
    24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn",
    26: "EndTxn",
    28: "TxnOffsetCommit",
    29: "DescribeAcls",
    30: "CreateAcls",
    31: "DeleteAcls",
    32: "DescribeConfigs",
    33: "AlterConfigs",
    36: "SaslAuthenticate",
    37: "CreatePartitions",
    42: "DeleteGroups",
    44: "IncrementalAlterConfigs",
    47: "OffsetDelete",
    60: "DescribeCluster",
    65: "DescribeTransactions",
    66: "ListTransactions",
    68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe",
    76: "ShareGroupHeartbeat",
    78: "ShareFetch",
    79: "ShareAcknowledge",
}

SUPPORTED_APIS: Final[dict[int, tuple[int, int]]] = {
    0: (3, 9),  # Produce
    1: (4, 12),  # Fetch
    2: (1, 7),  # ListOffsets
    3: (0, 12),  # Metadata
    8: (2, 9),  # OffsetCommit
    9: (1, 9),  # OffsetFetch
    10: (0, 4),  # FindCoordinator
    11: (0, 9),  # JoinGroup
    12: (0, 4),  # Heartbeat
    13: (0, 5),  # LeaveGroup
    14: (0, 5),  # SyncGroup
    15: (0, 5),  # DescribeGroups
    16: (0, 5),  # ListGroups
    17: (0, 1),  # SaslHandshake
    18: (0, 4),  # ApiVersions
    19: (2, 7),  # CreateTopics
    20: (1, 6),  # DeleteTopics
    21: (0, 2),  # DeleteRecords
    22: (0, 4),  # InitProducerId
    24: (0, 5),  # AddPartitionsToTxn (v4+: KIP-890 batched/verify-only)
    25: (0, 4),  # AddOffsetsToTxn
    26: (0, 4),  # EndTxn (5 is transactions v2: an epoch bump per transaction)
    28: (0, 4),  # TxnOffsetCommit (5 is transactions v2: implicit AddOffsetsToTxn)
    29: (1, 3),  # DescribeAcls
    30: (1, 3),  # CreateAcls
    31: (1, 3),  # DeleteAcls
    32: (1, 4),  # DescribeConfigs
    33: (0, 2),  # AlterConfigs
    36: (0, 2),  # SaslAuthenticate
    37: (0, 3),  # CreatePartitions
    42: (0, 2),  # DeleteGroups
    44: (0, 1),  # IncrementalAlterConfigs
    47: (0, 0),  # OffsetDelete
    60: (0, 2),  # DescribeCluster
    65: (0, 0),  # DescribeTransactions
    66: (0, 2),  # ListTransactions
    68: (0, 1),  # ConsumerGroupHeartbeat
    69: (0, 1),  # ConsumerGroupDescribe
    76: (1, 1),  # ShareGroupHeartbeat
    78: (1, 2),  # ShareFetch
    79: (1, 2),  # ShareAcknowledge
}

ADVERTISED_APIS: Final[dict[int, tuple[int, int]]] = {**SUPPORTED_APIS, 0: (0, SUPPORTED_APIS[0][1])}

_API_VERSIONS_KEY: Final = 18
_PREFIX: Final = struct.Struct(">hhi")
_INT32: Final = struct.Struct(">i")


class ProtocolError(StreamlabError):
    """A request frame that cannot be served, with whatever of its header was readable.

    ``correlation_id``, ``api_key`` and ``api_version`` are None only when the frame is
    shorter than the fixed 8-byte header prefix.
    """

    def __init__(
        self,
        message: str,
        *,
        correlation_id: int | None = None,
        api_key: int | None = None,
        api_version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.correlation_id = correlation_id
        self.api_key = api_key
        self.api_version = api_version


class UnsupportedVersionError(ProtocolError):
    """The API is served, but not at this version.

    For ApiVersions the broker must still answer, with a v0 body carrying this error and
    the supported ranges: ``encode_response(18, 0, exc.correlation_id,
    api_versions_response(0, error_code=ErrorCode.unsupported_version))``. For any other
    API, Kafka closes the connection.
    """

    kafka_code = 35  # UNSUPPORTED_VERSION


class InvalidRequestError(ProtocolError):
    """The frame is malformed or names an API this broker does not serve."""

    kafka_code = 42  # INVALID_REQUEST


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: Any  # a kio request entity, or produce_codec.ProduceRequestBody


_Reader = Callable[[bytes, int], tuple[Any, int]]
_request_readers: dict[tuple[int, int], tuple[_Reader, _Reader]] = {}


def _readers_for(api_key: int, api_version: int) -> tuple[_Reader, _Reader]:
    # kio resolves schemas by dynamic import; caching keeps that off the request path.
    readers = _request_readers.get((api_key, api_version))
    if readers is None:
        schema = load_request_schema(api_key, api_version)
        readers = (entity_reader(schema.__header_schema__), entity_reader(schema))
        _request_readers[(api_key, api_version)] = readers
    return readers


def parse_request(frame: bytes | bytearray | memoryview) -> ParsedRequest:
    """Parse one request frame (without its 4-byte size prefix).

    Raises :class:`UnsupportedVersionError` for a served API at a version outside
    :data:`SUPPORTED_APIS`, and :class:`InvalidRequestError` for an API we do not serve
    or any malformed content (truncation, bad lengths, invalid UTF-8, trailing bytes).
    Nothing else escapes, whatever the input.
    """
    # kio's native readers refuse writable buffers.
    buf = frame if isinstance(frame, bytes) else bytes(frame)
    if len(buf) < _PREFIX.size:
        raise InvalidRequestError(
            f"request frame of {len(buf)} bytes is shorter than the {_PREFIX.size}-byte header prefix"
        )
    api_key, api_version, correlation_id = _PREFIX.unpack_from(buf)
    ids: dict[str, Any] = {"correlation_id": correlation_id, "api_key": api_key, "api_version": api_version}
    versions = SUPPORTED_APIS.get(api_key)
    if versions is None:
        raise InvalidRequestError(f"api key {api_key} is not served by this broker", **ids)
    name = API_NAMES[api_key]
    low, high = versions
    if not low <= api_version <= high:
        raise UnsupportedVersionError(
            f"{name} v{api_version} is not supported (this broker serves v{low}-v{high})", **ids
        )
    read_header, read_body = _readers_for(api_key, api_version)
    try:
        header, header_size = read_header(buf, 0)
        body, body_size = read_body(buf, header_size)
    # The native decoder's exception types are not a stable contract (BufferUnderflow,
    # ValueError from enums, UnicodeDecodeError, ...); on untrusted bytes every failure
    # means the same thing: a malformed request.
    except Exception as exc:
        raise InvalidRequestError(
            f"malformed {name} v{api_version} request: {type(exc).__name__}: {exc}", **ids
        ) from exc
    trailing = len(buf) - header_size - body_size
    if trailing:
        raise InvalidRequestError(f"{trailing} unexpected bytes after the {name} v{api_version} body", **ids)
    return ParsedRequest(api_key, api_version, correlation_id, header.client_id, body)


def encode_response_parts(api_key: int, api_version: int, correlation_id: int, body: ResponsePayload) -> list[bytes]:
    """Serialize a kio response with its size prefix and response header, as parts to
    send one after another: large byte fields (a Fetch's records) are kept by reference
    between them, never copied into one buffer.

    Raises :class:`ValueError` if ``body`` is not the response schema of
    ``api_key``/``api_version``: that is a broker bug, not a client error.
    """
    if (
        getattr(body, "__type__", None) is not EntityType.response
        or body.__api_key__ != api_key
        or body.__version__ != api_version
    ):
        raise ValueError(f"{type(body).__name__} is not the response to api key {api_key} v{api_version}")
    out = _Gather()
    entity_writer(type(body))(cast(IO[bytes], out), body)  # kio's writers only call write()
    parts = out.parts()
    header = _INT32.pack(correlation_id)
    if body.__flexible__ and api_key != _API_VERSIONS_KEY:
        header += b"\0"  # header v1: an empty tagged-field section
    size = len(header) + sum(len(part) for part in parts)
    prefix = _INT32.pack(size) + header
    if parts and len(parts[0]) < _BY_REFERENCE:
        # A small response stays one buffer, sent in one write (and one TCP segment), as
        # clients that read a response with a single recv() expect.
        return [prefix + parts[0], *parts[1:]]
    return [prefix, *parts]


def encode_response(api_key: int, api_version: int, correlation_id: int, body: ResponsePayload) -> bytes:
    """:func:`encode_response_parts` as one buffer."""
    return b"".join(encode_response_parts(api_key, api_version, correlation_id, body))


_BY_REFERENCE: Final = 64 * 1024


class _Gather:
    """What kio's writers write, with writes of ``_BY_REFERENCE`` bytes or more kept as
    they are (a reference, not a copy) between the small ones joined."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._small = bytearray()

    def write(self, data: bytes) -> int:
        if len(data) < _BY_REFERENCE:
            self._small += data
        else:
            if self._small:
                self._parts.append(bytes(self._small))
                self._small.clear()
            self._parts.append(data)
        return len(data)

    def parts(self) -> list[bytes]:
        return [*self._parts, bytes(self._small)] if self._small else self._parts


def api_versions_response(
    api_version: int,
    *,
    error_code: ErrorCode = ErrorCode.none,
    throttle_time_ms: int = 0,
) -> ResponsePayload:
    """The ApiVersions response body advertising :data:`ADVERTISED_APIS`."""
    schema = load_response_schema(_API_VERSIONS_KEY, api_version)
    entry = sys.modules[schema.__module__].ApiVersion
    fields: dict[str, Any] = {
        "error_code": error_code,
        "api_keys": tuple(
            entry(api_key=i16(key), min_version=i16(low), max_version=i16(high))
            for key, (low, high) in sorted(ADVERTISED_APIS.items())
        ),
    }
    if api_version >= 1:
        fields["throttle_time"] = datetime.timedelta(milliseconds=throttle_time_ms)
    return schema(**fields)
