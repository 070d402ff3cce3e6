"""Produce requests and answers written by hand (protocol/produce_codec.py) hold to kio's
codec on every served version: the same fields read, the same bytes written, and every
malformed frame refused with InvalidRequestError."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka_wire import frame, kio_request
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode

from streamlab.protocol.framing import SUPPORTED_APIS, InvalidRequestError, encode_response, parse_request
from streamlab.protocol.produce_codec import PartitionAnswer, encode_produce_response
from streamlab.server.requests import parse

LOW, HIGH = SUPPORTED_APIS[0]
VERSIONS = list(range(LOW, HIGH + 1))

names = st.text(min_size=1, max_size=20)
partitions = st.lists(st.tuples(st.integers(0, 2**31 - 1), st.one_of(st.none(), st.binary(max_size=300))), max_size=4)
topics = st.lists(st.tuples(names, partitions), max_size=4)


def produce_frame(version: int, transactional_id: str | None, acks: int, timeout_ms: int, data: list,
                  client_id: str | None = "codec-test") -> bytes:  # fmt: skip
    body = kio_request(
        0, version, transactional_id=transactional_id, acks=acks,
        timeout=datetime.timedelta(milliseconds=timeout_ms),
        topic_data=[{"name": n, "partition_data": [{"index": i, "records": r} for i, r in parts]} for n, parts in data],
    )  # fmt: skip
    return frame(body, correlation_id=77, client_id=client_id)[4:]


@settings(max_examples=60, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    transactional_id=st.one_of(st.none(), names),
    acks=st.sampled_from([-1, 0, 1, 5]),
    timeout_ms=st.integers(0, 2**31 - 1),
    data=topics,
    client_id=st.one_of(st.none(), names),
)
def test_requests_read_as_kio_reads_them(
    version: int, transactional_id: str | None, acks: int, timeout_ms: int, data: list, client_id: str | None
) -> None:
    raw = produce_frame(version, transactional_id, acks, timeout_ms, data, client_id)
    ours, kio = parse(raw), parse_request(raw)
    assert (ours.api_key, ours.api_version, ours.correlation_id, ours.client_id) == (0, version, 77, client_id)
    assert ours.client_id == kio.client_id
    body, expected = ours.body, kio.body
    assert (body.transactional_id, body.acks) == (expected.transactional_id, expected.acks)
    assert datetime.timedelta(milliseconds=body.timeout_ms) == expected.timeout
    assert [(t.name, [(p.index, p.records) for p in t.partition_data]) for t in body.topic_data] == [
        (t.name, [(p.index, p.records) for p in t.partition_data]) for t in expected.topic_data
    ]


answers = st.lists(
    st.tuples(
        names,
        st.lists(
            st.builds(
                PartitionAnswer,
                index=st.integers(0, 2**31 - 1),
                error_code=st.sampled_from([0, 2, 10, 87]),
                base_offset=st.integers(-1, 2**62),
                log_append_time_ms=st.one_of(st.just(-1), st.integers(0, 2**41)),
                log_start_offset=st.integers(-1, 2**62),
                error_message=st.one_of(st.none(), st.text(max_size=30)),
            ),
            max_size=4,
        ),
    ),
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(version=st.sampled_from(VERSIONS), topics=answers)
def test_responses_are_the_bytes_kio_writes(version: int, topics: list) -> None:
    schema = load_response_schema(0, version)
    topic_type = schema.__dataclass_fields__["responses"].type.__args__[0]
    partition_type = topic_type.__dataclass_fields__["partition_responses"].type.__args__[0]
    fields = partition_type.__dataclass_fields__

    def kio_partition(p: PartitionAnswer) -> object:
        appended = p.log_append_time_ms
        values = {"index": p.index, "error_code": ErrorCode(p.error_code), "base_offset": p.base_offset,
                  "log_append_time": None if appended < 0
                  else datetime.datetime.fromtimestamp(appended / 1000, tz=datetime.UTC),
                  "log_start_offset": p.log_start_offset, "record_errors": (),
                  "error_message": p.error_message}  # fmt: skip
        return partition_type(**{k: v for k, v in values.items() if k in fields})

    body = schema(
        responses=tuple(topic_type(name=n, partition_responses=tuple(map(kio_partition, ps))) for n, ps in topics),
        throttle_time=datetime.timedelta(0),
    )
    assert encode_produce_response(version, 41, topics) == encode_response(0, version, 41, body)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_truncation_is_refused(version: int) -> None:
    raw = produce_frame(version, "tx", -1, 30_000, [("orders", [(0, b"x" * 70), (1, None)]), ("b", [(2, b"")])])
    parse(raw)
    for cut in range(8, len(raw)):
        with pytest.raises(InvalidRequestError, match=f"Produce v{version}"):
            parse(raw[:cut])


@settings(max_examples=300, deadline=None)
@given(version=st.sampled_from(VERSIONS), flips=st.lists(st.tuples(st.integers(8, 10**6), st.integers(1, 255))))
def test_damaged_requests_are_read_or_refused_as_kio_does(version: int, flips: list[tuple[int, int]]) -> None:
    """Bytes changed after the header prefix: both readers agree, or kio's lenient reading
    of a damaged body aside, ours refuses it with InvalidRequestError and nothing else."""
    raw = bytearray(produce_frame(version, None, 1, 500, [("orders", [(0, b"\x00" * 40), (3, b"y")])]))
    for at, xor in flips:
        raw[at % len(raw)] ^= xor if at % len(raw) >= 8 else 0
    try:
        ours = parse(bytes(raw))
    except InvalidRequestError:
        return
    kio = parse_request(bytes(raw)[: len(raw)]) if _kio_reads(bytes(raw)) else None
    if kio is not None:
        assert [(t.name, [(p.index, p.records) for p in t.partition_data]) for t in ours.body.topic_data] == [
            (t.name, [(p.index, p.records) for p in t.partition_data]) for t in kio.body.topic_data
        ]


def _kio_reads(raw: bytes) -> bool:
    try:
        parse_request(raw)
    except InvalidRequestError:
        return False
    return True


def test_forged_counts_and_nulls_are_refused() -> None:
    flexible = produce_frame(9, None, 1, 500, [("t", [(0, b"r")])])
    # header (8) + client id (2 + 10) + header tags (1) + transactional id (1) + acks/timeout (6): topic count
    at = 8 + 2 + len(b"codec-test") + 1 + 1 + 6
    assert flexible[at] == 2  # one topic, as a compact count
    with pytest.raises(InvalidRequestError, match="more than the frame holds"):
        parse(flexible[:at] + b"\xff\xff\xff\xff\x07" + flexible[at + 1 :])
    with pytest.raises(InvalidRequestError, match="topic_data is null"):
        parse(flexible[:at] + b"\x00" + flexible[at + 1 :])
    legacy = produce_frame(8, None, 1, 500, [("t", [(0, b"r")])])
    at = 8 + 2 + len(b"codec-test") + 2 + 6
    assert legacy[at : at + 4] == b"\x00\x00\x00\x01"
    with pytest.raises(InvalidRequestError, match="more than the frame holds"):
        parse(legacy[:at] + b"\x7f\xff\xff\xff" + legacy[at + 4 :])
    with pytest.raises(InvalidRequestError, match="name is null"):
        parse(legacy[: at + 4] + b"\xff\xff" + legacy[at + 4 + 2 + 1 :])
