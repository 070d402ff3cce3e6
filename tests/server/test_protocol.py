"""Protocol behaviour checked byte by byte: version negotiation, errors, idempotence, long polls."""

from __future__ import annotations

import datetime
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from harness import ServerProcess
from kafka_wire import KAFKA_PYTHON, RawClient, frame, kio_request, records, sample_frame
from kio.index import load_response_schema
from kio.serial import entity_reader

import streamlab
from streamlab.protocol.batch_encoding import encode_batch
from streamlab.protocol.framing import SUPPORTED_APIS, InvalidRequestError
from streamlab.protocol.record_batch import WireRecord, decode_batches
from streamlab.server.requests import parse

MS = datetime.timedelta(milliseconds=1)


def produce(client: RawClient, topic: str, data: bytes, *, partition: int = 0, acks: int = -1) -> Any:
    body = kio_request(
        0, 9, transactional_id=None, acks=acks, timeout=5000 * MS,
        topic_data=[{"name": topic, "partition_data": [{"index": partition, "records": data}]}],
    )  # fmt: skip
    if acks == 0:
        client.send(body)
        return None
    return client.call(body).responses[0].partition_responses[0]


def fetch(client: RawClient, topic: str, offset: int, *, max_wait_ms: int = 0, partition_max_bytes: int = 1 << 20,
          min_bytes: int = 1) -> Any:  # fmt: skip
    body = kio_request(
        1, 12, max_wait=max_wait_ms * MS, min_bytes=min_bytes, max_bytes=50 << 20, forgotten_topics_data=[],
        topics=[{"topic": topic, "partitions": [
            {"partition": 0, "fetch_offset": offset, "partition_max_bytes": partition_max_bytes}]}],
    )  # fmt: skip
    return client.call(body).responses[0].partitions[0]


def list_offset(client: RawClient, topic: str, timestamp: int) -> Any:
    body = kio_request(
        2, 7, replica_id=-1, isolation_level=0,
        topics=[{"name": topic, "partitions": [{"partition_index": 0, "timestamp": timestamp}]}],
    )  # fmt: skip
    return client.call(body).topics[0].partitions[0]


def init_producer_id(client: RawClient) -> tuple[int, int]:
    response = client.call(kio_request(22, 4, transactional_id=None, transaction_timeout=60_000 * MS))
    assert response.error_code.value == 0
    return int(response.producer_id), int(response.producer_epoch)


# --- parsing (no server) ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("api_key", "version"),
    [(k, v) for k, (low, high) in SUPPORTED_APIS.items() if k in KAFKA_PYTHON for v in range(low, high + 1)],
)
def test_every_supported_request_passes_the_length_check(api_key: int, version: int) -> None:
    request = parse(sample_frame(api_key, version)[4:])  # kafka-python's encoding, every field set
    assert (request.api_key, request.api_version) == (api_key, version)


@pytest.mark.parametrize("count", [2**31 - 1, 100_000, 3])
def test_forged_array_counts_are_refused_before_kio_reserves_memory(count: int) -> None:
    # Metadata v1: topics is a legacy array (int32 count) of strings right after the header.
    data = bytearray(frame(kio_request(3, 1, topics=[{"name": "a"}]))[4:])
    at = data.index(b"\x00\x00\x00\x01\x00\x01a")
    data[at : at + 4] = count.to_bytes(4, "big")
    with pytest.raises(InvalidRequestError, match=r"cannot fit|malformed"):
        parse(bytes(data))


def test_null_for_a_non_nullable_array_is_malformed() -> None:
    body = kio_request(2, 1, replica_id=-1, topics=[])
    data = bytearray(frame(body)[4:])
    data[-4:] = b"\xff\xff\xff\xff"  # topics: -1 (null), which ListOffsets does not allow
    with pytest.raises(InvalidRequestError, match="topics is null"):
        parse(bytes(data))


def test_bytes_after_the_body_are_ignored_as_kafka_does() -> None:
    # What librdkafka 2.16 sends for "all topics" at Metadata v12.
    data = bytes.fromhex("0003000c00000003000772646b61666b610000000000010000")
    request = parse(data)
    assert request.body.topics is None and request.correlation_id == 3


# --- against a server ----------------------------------------------------------------------
def test_api_versions_at_an_unknown_version_gets_the_ranges_in_v0(shared_server: ServerProcess) -> None:
    with RawClient(shared_server.bootstrap) as client:
        payload = struct.pack(">hhih", 18, 99, 42, -1)  # ApiVersions v99, null client id
        client.sock.sendall(struct.pack(">i", len(payload)) + payload)
        data = client.recv_frame()
        assert struct.unpack_from(">i", data) == (42,)
        body, _ = entity_reader(load_response_schema(18, 0))(data, 4)
        assert body.error_code.value == 35  # UNSUPPORTED_VERSION
        assert any(k.api_key == 0 for k in body.api_keys)
        # The connection stays usable: the client retries at a version we speak.
        assert client.call(kio_request(18, 3, client_software_name="t", client_software_version="1")).error_code == 0


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack(">hhih", 1000, 0, 1, -1),  # an API key we do not serve
        struct.pack(">hhih", 0, 2, 1, -1) + b"\0" * 20,  # Produce v2: below our range
        struct.pack(">hhih", 3, 1, 1, 5) + b"ab",  # truncated client id
    ],
)
def test_unservable_requests_close_only_their_connection(shared_server: ServerProcess, payload: bytes) -> None:
    with RawClient(shared_server.bootstrap) as bad, RawClient(shared_server.bootstrap) as good:
        bad.sock.sendall(struct.pack(">i", len(payload)) + payload)
        assert bad.is_closed_by_server()
        assert good.call(kio_request(3, 12, topics=[], include_topic_authorized_operations=False)).brokers


def test_corrupt_crc_is_refused_and_nothing_is_stored(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic()
    data = bytearray(records(b"hello", b"world"))
    data[-3] ^= 0xFF
    with RawClient(shared_server.bootstrap) as client:
        assert produce(client, topic, bytes(data)).error_code.value == 2  # CORRUPT_MESSAGE
        assert list_offset(client, topic, -1).offset == 0
        assert produce(client, topic, records(b"fine")).error_code.value == 0


def test_acks_zero_gets_no_response(shared_server: ServerProcess, create_shared_topic: Callable[..., str]) -> None:
    topic = create_shared_topic()
    with RawClient(shared_server.bootstrap) as client:
        produce(client, topic, records(b"fire", b"forget"), acks=0)
        # The next response on the connection answers the next request.
        assert list_offset(client, topic, -1).offset == 2
        assert produce(client, "no-such-topic", records(b"x")).error_code.value == 3
        # With acks=0 an error has no response to travel in: Kafka closes the connection.
        produce(client, "no-such-topic", records(b"x"), acks=0)
        assert client.is_closed_by_server()


def test_fetch_long_poll_waits_for_data_then_answers_at_once(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic()
    with RawClient(shared_server.bootstrap) as consumer, RawClient(shared_server.bootstrap) as producer:
        start = time.monotonic()
        empty = fetch(consumer, topic, 0, max_wait_ms=300)
        assert 0.25 <= time.monotonic() - start < 3 and empty.records in (b"", None)

        got: list[Any] = []
        waiter = threading.Thread(target=lambda: got.append(fetch(consumer, topic, 0, max_wait_ms=20_000)))
        start = time.monotonic()
        waiter.start()
        time.sleep(0.3)
        assert produce(producer, topic, records(b"wake up")).error_code.value == 0
        waiter.join(15)
        assert time.monotonic() - start < 5  # woken by the append, not by max_wait
        (batch,) = decode_batches(got[0].records)
        assert [r.value for r in batch.records] == [b"wake up"]
        assert got[0].high_watermark == 1


def test_fetch_sizes_follow_partition_max_bytes(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic()
    with RawClient(shared_server.bootstrap) as client:
        produce(client, topic, records(*[bytes([i]) * 1000 for i in range(10)]))
        some = decode_batches(fetch(client, topic, 0, partition_max_bytes=3500).records)
        assert 1 <= sum(len(b.records) for b in some) <= 3
        # The first record comes back even if it alone is over the limit (KIP-74).
        (one,) = decode_batches(fetch(client, topic, 4, partition_max_bytes=10).records)
        assert [r.offset for r in one.records] == [4]
        out_of_range = fetch(client, topic, 11)
        assert out_of_range.error_code.value == 1 and out_of_range.high_watermark == 10


def test_list_offsets_earliest_latest_and_by_time(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic()
    with RawClient(shared_server.bootstrap) as client:
        produce(client, topic, records(b"a", b"b", b"c", timestamp=1_000_000))  # timestamps 1e6 .. 1e6+2
        assert list_offset(client, topic, -2).offset == 0
        assert list_offset(client, topic, -1).offset == 3
        found = list_offset(client, topic, 1_000_001)
        assert (found.offset, found.timestamp) == (1, 1_000_001)
        assert list_offset(client, topic, 2_000_000).offset == -1  # no such record: -1, as Kafka
        newest = list_offset(client, topic, -3)
        assert (newest.offset, newest.timestamp) == (2, 1_000_002)


def test_idempotent_retries_are_dropped_even_across_a_crash(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    topic = create_topic()
    with RawClient(server.bootstrap) as client:
        pid, epoch = init_producer_id(client)
        assert init_producer_id(client)[0] != pid

        def batch(first_seq: int, *values: bytes) -> bytes:
            return records(*values, producer_id=pid, producer_epoch=epoch, base_sequence=first_seq)

        assert produce(client, topic, batch(0, b"a", b"b")).base_offset == 0
        assert produce(client, topic, batch(0, b"a", b"b")).base_offset == 0  # a retry: same offset
        assert produce(client, topic, batch(2, b"c")).base_offset == 2
        assert produce(client, topic, batch(5, b"gap")).error_code.value == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    server.restart(kill=True)
    with RawClient(server.bootstrap) as client:
        retry = produce(client, topic, records(b"c", producer_id=pid, producer_epoch=epoch, base_sequence=2))
        assert (retry.error_code.value, retry.base_offset) == (0, 2)
        assert list_offset(client, topic, -1).offset == 3
        # Producer ids are never handed out twice, not even after a crash.
        assert init_producer_id(client)[0] > pid + 1


def test_format_headers_are_stored_as_formats_and_given_back(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    topic = create_topic()
    sent = WireRecord(0, int(time.time() * 1000), b"user-1", b'{"n":1}', (
        ("streamlab.key.format", b"2"), ("streamlab.value.format", b"3"), ("trace", b"t1")))  # fmt: skip
    with RawClient(server.bootstrap) as client:
        assert produce(client, topic, encode_batch([sent])).error_code.value == 0
        (batch,) = decode_batches(fetch(client, topic, 0).records)
        assert dict(batch.records[0].headers) == dict(sent.headers)
        bad = WireRecord(0, 1, b"k", b"v", (("streamlab.value.format", b"x"),))
        assert produce(client, topic, encode_batch([bad])).error_code.value == 87  # INVALID_RECORD
    server.stop()
    with streamlab.connect(server.data_dir) as lab, lab.consumer(None, auto_offset_reset="earliest") as consumer:
        consumer.assign([streamlab.TopicPartition(topic, 0)])
        (record,) = consumer.poll(timeout=5)
        assert (record.key, record.value, record.headers) == ("user-1", {"n": 1}, {"trace": b"t1"})
