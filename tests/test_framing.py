"""Request/response framing against kafka-python's independent protocol implementation."""

from __future__ import annotations

import io
import struct
import uuid
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer

from streamlab.errors import StreamlabError
from streamlab.protocol.batch_encoding import encode_batch
from streamlab.protocol.framing import (
    ADVERTISED_APIS,
    API_NAMES,
    SUPPORTED_APIS,
    InvalidRequestError,
    ParsedRequest,
    ProtocolError,
    UnsupportedVersionError,
    api_versions_response,
    encode_response,
    parse_request,
)
from streamlab.protocol.record_batch import WireRecord, decode_batches

# kafka-python loads its protocol schemas with the deprecated importlib.resources.read_text
# at import time, which pytest's filterwarnings=error would turn into a collection error.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.protocol.admin
    import kafka.protocol.consumer
    import kafka.protocol.metadata
    import kafka.protocol.producer
    from kafka.protocol.api_message import ApiMessage
    from kafka.protocol.broker_version_data import BrokerVersionData
    from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest
    from kafka.protocol.producer import ProduceRequest
    from kafka.record.memory_records import MemoryRecordsBuilder

KAFKA_PYTHON: dict[tuple[int, str], Any] = {}
for _module in (kafka.protocol.metadata, kafka.protocol.producer, kafka.protocol.consumer, kafka.protocol.admin):
    for _name in _module.__all__:
        _obj = getattr(_module, _name)
        if isinstance(_obj, type) and issubclass(_obj, ApiMessage):
            _cls: Any = _obj
            KAFKA_PYTHON[(_cls.API_KEY, _cls.type)] = _cls

ALL_VERSIONS = [(key, v) for key, (low, high) in sorted(SUPPORTED_APIS.items()) for v in range(low, high + 1)]
# kafka-python (an independent encoder) has no share-group APIs (KIP-932): those are checked
# against librdkafka's share consumer and raw kio requests in tests/server and tests/conformance.
CROSS_CHECKED = [(key, v) for key, v in ALL_VERSIONS if (key, "request") in KAFKA_PYTHON]
RECORDS = encode_batch([WireRecord(0, 1_000, b"k", b"v", (("h", b"x"),)), WireRecord(1, 1_001, None, b"w")])


def _simple_value(type_str: str, name: str) -> Any:
    if name.endswith("error_code"):
        return 0  # kio maps error codes onto its ErrorCode enum
    values: dict[str, Any] = {
        "int8": 1,
        "int16": 2,
        "uint16": 5,
        "int32": 3,
        "int64": 4,
        "float64": 0.5,
        "bool": True,
        "uuid": uuid.UUID(int=0x1234),  # kio reads the zero UUID as None
        "string": f"s-{name}",
        "bytes": b"by",
        "records": RECORDS,
        "bitfield": {3, 4},
    }
    return values[type_str]


def _fill(struct_field: Any, version: int, data_class: Any) -> Any:
    """Every field present at ``version`` set to a non-default value, arrays non-empty."""
    kwargs = {}
    for name, field in struct_field.fields.items():
        if not field.for_version_q(version):
            continue
        if field.is_struct_array():
            kwargs[name] = [_fill(field.array_of, version, field.array_of.data_class)]
        elif field.is_array():
            kwargs[name] = [_simple_value(field.array_of.type_str, name)] * 2
        elif field.is_struct():
            kwargs[name] = _fill(field, version, field.data_class)
        else:
            kwargs[name] = _simple_value(field.type_str, name)
    return data_class(version=version, **kwargs)


def kafka_python_sample(api_key: int, kind: str, version: int) -> Any:
    cls = KAFKA_PYTHON[(api_key, kind)]
    return _fill(cls._struct, version, cls)


def kafka_python_frame(request: Any, correlation_id: int = 99, client_id: str | None = "cid") -> bytes:
    request.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(request.encode(header=True))


def kio_encode(entity: Any) -> bytes:
    out = io.BytesIO()
    entity_writer(type(entity))(out, entity)
    return out.getvalue()


# --- version table ----------------------------------------------------------------------


def test_every_supported_version_has_kio_schemas() -> None:
    assert set(SUPPORTED_APIS) == set(API_NAMES)
    for key, version in ALL_VERSIONS:
        assert load_request_schema(key, version).__version__ == version
        assert load_response_schema(key, version).__version__ == version


def test_advertised_differs_only_in_produce_minimum() -> None:
    assert ADVERTISED_APIS[0] == (0, SUPPORTED_APIS[0][1])
    assert {k: v for k, v in ADVERTISED_APIS.items() if k != 0} == {k: v for k, v in SUPPORTED_APIS.items() if k != 0}


# librdkafka's rd_kafka_feature_map: a feature is on when every listed range overlaps the
# broker's advertised range.
LIBRDKAFKA_FEATURES = {
    "MsgVer2": [(0, 3, 3), (1, 4, 4)],
    "ApiVersion": [(18, 0, 0)],
    "BrokerGroupCoordinator": [(10, 0, 0)],
    "BrokerBalancedConsumer": [(10, 0, 0), (8, 1, 2), (9, 1, 1), (11, 0, 0), (14, 0, 0), (12, 0, 0), (13, 0, 0)],
    "LZ4": [(10, 0, 0)],
    "OffsetTime": [(2, 1, 1)],
    "IdempotentProducer": [(22, 0, 0)],
    "ZSTD": [(0, 7, 7), (1, 10, 10)],
    "CompressionProbe(<2.10)": [(0, 0, 0)],
}


@pytest.mark.parametrize("feature", sorted(LIBRDKAFKA_FEATURES))
def test_librdkafka_features_stay_enabled(feature: str) -> None:
    for key, low, high in LIBRDKAFKA_FEATURES[feature]:
        broker_low, broker_high = ADVERTISED_APIS[key]
        assert low <= broker_high and broker_low <= high, (feature, API_NAMES[key])


def test_kafka_python_negotiates_inside_supported_ranges() -> None:
    data = BrokerVersionData(api_versions=dict(ADVERTISED_APIS))
    assert data.broker_version >= (2, 4)
    for key, (low, high) in SUPPORTED_APIS.items():
        if (key, "request") not in KAFKA_PYTHON:
            continue
        chosen = data.api_version(KAFKA_PYTHON[(key, "request")])
        assert low <= chosen <= high, API_NAMES[key]


# --- requests from kafka-python ---------------------------------------------------------


@pytest.mark.parametrize(("api_key", "version"), CROSS_CHECKED, ids=lambda x: str(x))
def test_parse_every_supported_request_from_kafka_python(api_key: int, version: int) -> None:
    request = kafka_python_sample(api_key, "request", version)
    parsed = parse_request(kafka_python_frame(request, correlation_id=12345, client_id="client-1"))
    assert isinstance(parsed, ParsedRequest)
    assert (parsed.api_key, parsed.api_version, parsed.correlation_id) == (api_key, version, 12345)
    assert parsed.client_id == "client-1"
    assert type(parsed.body) is load_request_schema(api_key, version)
    # Field-by-field equality through kafka-python's decoder of what kio read.
    assert KAFKA_PYTHON[(api_key, "request")].decode(kio_encode(parsed.body), version=version) == request


@pytest.mark.parametrize("version", range(0, 5))
def test_api_versions_request_and_null_client_id(version: int) -> None:
    request = ApiVersionsRequest[version](client_software_name="kafka-python", client_software_version="3")
    parsed = parse_request(kafka_python_frame(request, correlation_id=1, client_id=None))
    assert parsed.client_id is None
    if version >= 3:
        assert parsed.body.client_software_name == "kafka-python"  # type: ignore[union-attr]


@pytest.mark.parametrize("version", [0, 1, 4, 9, 12])
def test_metadata_request_topics(version: int) -> None:
    topics = [MetadataRequest.MetadataRequestTopic(name=name) for name in ("orders", "pay\u00e9")]
    parsed = parse_request(kafka_python_frame(MetadataRequest[version](topics=topics)))
    assert [t.name for t in parsed.body.topics] == ["orders", "pay\u00e9"]  # type: ignore[union-attr]


@pytest.mark.parametrize("version", [3, 7, 9])
def test_produce_request_carries_kafka_python_batches(version: int) -> None:
    builder = MemoryRecordsBuilder(magic=2, compression_type=1, batch_size=1 << 20)
    for i in range(5):
        builder.append(timestamp=1_000 + i, key=b"k%d" % i, value=b"v" * 50 * i, headers=[("h", b"%d" % i)])
    builder.close()
    partition = ProduceRequest.TopicProduceData.PartitionProduceData(index=2, records=bytes(builder.buffer()))
    request = ProduceRequest[version](
        transactional_id=None,
        acks=-1,
        timeout_ms=30_000,
        topic_data=[ProduceRequest.TopicProduceData(name="orders", partition_data=[partition])],
    )
    parsed = parse_request(kafka_python_frame(request))
    [topic] = parsed.body.topic_data  # type: ignore[union-attr]
    [data] = topic.partition_data
    assert (topic.name, data.index, parsed.body.acks) == ("orders", 2, -1)  # type: ignore[union-attr]
    [batch] = decode_batches(data.records, allow_truncated=False)
    assert [(r.offset, r.key, r.value) for r in batch.records] == [(i, b"k%d" % i, b"v" * 50 * i) for i in range(5)]
    assert batch.compression == "gzip"


# --- responses decoded by kafka-python --------------------------------------------------


@pytest.mark.parametrize(("api_key", "version"), CROSS_CHECKED, ids=lambda x: str(x))
def test_encode_every_supported_response_for_kafka_python(api_key: int, version: int) -> None:
    response = kafka_python_sample(api_key, "response", version)
    body_bytes = bytes(response.encode())
    body, size = entity_reader(load_response_schema(api_key, version))(body_bytes, 0)
    assert size == len(body_bytes)
    frame = encode_response(api_key, version, 4242, body)
    assert struct.unpack_from(">i", frame)[0] == len(frame) - 4
    decoded = KAFKA_PYTHON[(api_key, "response")].decode(frame[4:], version=version, header=True)
    assert decoded.header.correlation_id == 4242
    assert decoded == response


def test_response_header_versions() -> None:
    flexible = encode_response(3, 12, 7, _metadata_response(12))
    rigid = encode_response(3, 8, 7, _metadata_response(8))
    throttle_time = b"\x00\x00\x00\x03"  # first body field of both samples
    assert flexible[4:13] == b"\x00\x00\x00\x07" + b"\x00" + throttle_time  # header v1: empty tag section
    assert rigid[4:12] == b"\x00\x00\x00\x07" + throttle_time  # header v0
    api_versions = encode_response(18, 3, 7, api_versions_response(3))
    assert api_versions[4:8] == b"\x00\x00\x00\x07"
    assert api_versions[8:10] == b"\x00\x00", "ApiVersions uses header v0: error code follows"


def _metadata_response(version: int) -> Any:
    sample = bytes(kafka_python_sample(3, "response", version).encode())
    return entity_reader(load_response_schema(3, version))(sample, 0)[0]


@pytest.mark.parametrize("version", range(0, 5))
def test_api_versions_response_negotiates_with_kafka_python(version: int) -> None:
    frame = encode_response(18, version, 3, api_versions_response(version, throttle_time_ms=5))
    decoded = ApiVersionsResponse.decode(frame[4:], version=version, header=True)
    assert decoded.error_code == 0
    assert {a.api_key: (a.min_version, a.max_version) for a in decoded.api_keys} == ADVERTISED_APIS


def test_unsupported_api_versions_request_gets_a_v0_fallback() -> None:
    # A future client's ApiVersions v5: flexible header v2, body we cannot know.
    frame = struct.pack(">hhih", 18, 5, 31, 3) + b"cli" + b"\x00" + b"\x07future\x021\x00"
    with pytest.raises(UnsupportedVersionError) as info:
        parse_request(frame)
    error = info.value
    assert (error.correlation_id, error.api_key, error.api_version) == (31, 18, 5)
    assert error.kafka_code == 35
    assert error.correlation_id is not None
    reply = encode_response(
        18, 0, error.correlation_id, api_versions_response(0, error_code=ErrorCode.unsupported_version)
    )
    decoded = ApiVersionsResponse.decode(reply[4:], version=4, header=True)  # what the client expects
    assert decoded.header.correlation_id == 31
    assert decoded.error_code == 35
    assert {a.api_key: (a.min_version, a.max_version) for a in decoded.api_keys}[18] == (0, 4)


def test_encode_response_rejects_mismatched_bodies() -> None:
    body = api_versions_response(3)
    with pytest.raises(ValueError, match="not the response"):
        encode_response(18, 2, 1, body)
    with pytest.raises(ValueError, match="not the response"):
        encode_response(3, 3, 1, body)
    request = parse_request(kafka_python_frame(ApiVersionsRequest[3]())).body
    with pytest.raises(ValueError, match="not the response"):
        encode_response(18, 3, 1, request)  # type: ignore[arg-type]


# --- typed errors -----------------------------------------------------------------------


def _prefix(api_key: int, version: int, correlation_id: int = 77) -> bytes:
    return struct.pack(">hhih", api_key, version, correlation_id, -1)


@pytest.mark.parametrize(
    ("frame", "error", "message"),
    [
        (_prefix(0, 2), UnsupportedVersionError, "Produce v2 is not supported"),
        (_prefix(1, 13), UnsupportedVersionError, "Fetch v13"),
        (_prefix(3, -1), UnsupportedVersionError, "Metadata v-1"),
        (_prefix(43, 1), InvalidRequestError, "api key 43 is not served"),  # ElectLeaders
        (_prefix(-5, 0), InvalidRequestError, "api key -5"),
        (_prefix(3, 1), InvalidRequestError, "malformed Metadata v1"),
        (_prefix(18, 0) + b"\x00", InvalidRequestError, "1 unexpected bytes"),
    ],
)
def test_rejections_carry_the_header(frame: bytes, error: type[ProtocolError], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        parse_request(frame)
    assert info.value.correlation_id == 77
    assert (info.value.api_key, info.value.api_version) == struct.unpack_from(">hh", frame)
    assert isinstance(info.value, StreamlabError)


def test_error_codes_and_short_frames() -> None:
    assert UnsupportedVersionError.kafka_code == 35
    assert InvalidRequestError.kafka_code == 42
    with pytest.raises(InvalidRequestError, match="shorter than") as info:
        parse_request(b"\x00\x03\x00\x01\x00\x00\x00")
    assert info.value.correlation_id is None


def test_invalid_utf8_client_id_is_invalid_request() -> None:
    frame = struct.pack(">hhih", 18, 0, 5, 2) + b"\xff\xfe"
    with pytest.raises(InvalidRequestError, match="malformed ApiVersions v0"):
        parse_request(frame)


def test_accepts_bytearray_and_memoryview() -> None:
    frame = kafka_python_frame(MetadataRequest[1](topics=None))
    for view in (bytearray(frame), memoryview(frame)):
        assert parse_request(view).body.topics is None  # type: ignore[union-attr]


# --- fuzzing: only our errors may escape ------------------------------------------------

# Fuzz campaigns (here and in test_record_batch.py): their worth is the volume of inputs (the
# mutated record batches still reach new branches between 600 and 1,500 examples) and nearly all
# their time goes to hypothesis generating the inputs, so they run in CI, not in the inner loop.

SEED_FRAMES = [
    kafka_python_frame(kafka_python_sample(key, "request", version), correlation_id=1000 + i)
    for i, (key, version) in enumerate(CROSS_CHECKED)
]


def _check(frame: bytes) -> None:
    try:
        parsed = parse_request(frame)
    except ProtocolError as exc:
        if len(frame) >= 8:
            assert exc.correlation_id == struct.unpack_from(">i", frame, 4)[0]
        else:
            assert exc.correlation_id is None
    else:
        assert parsed.correlation_id == struct.unpack_from(">i", frame, 4)[0]


@pytest.mark.integration
@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_protocol_errors(frame: bytes) -> None:
    _check(frame)


@pytest.mark.integration
@settings(max_examples=1000, deadline=None)
@given(
    prefix=st.sampled_from([(k, v) for k, (_, high) in SUPPORTED_APIS.items() for v in (0, high)]),
    rest=st.binary(max_size=120),
)
def test_random_bodies_for_served_apis_raise_only_protocol_errors(prefix: tuple[int, int], rest: bytes) -> None:
    _check(struct.pack(">hhi", *prefix, 9) + rest)


@pytest.mark.integration
@settings(max_examples=1500, deadline=None)
@given(
    seed=st.sampled_from(SEED_FRAMES),
    edits=st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=4),
    cut=st.none() | st.integers(0, 4096),
    insert=st.none() | st.tuples(st.integers(0, 4096), st.binary(min_size=1, max_size=8)),
)
def test_mutated_kafka_python_frames_raise_only_protocol_errors(
    seed: bytes, edits: list[tuple[int, int]], cut: int | None, insert: tuple[int, bytes] | None
) -> None:
    frame = bytearray(seed)
    for pos, value in edits:
        frame[pos % len(frame)] = value
    if insert is not None:
        pos = insert[0] % (len(frame) + 1)
        frame[pos:pos] = insert[1]
    if cut is not None:
        del frame[cut % (len(frame) + 1) :]
    _check(bytes(frame))
