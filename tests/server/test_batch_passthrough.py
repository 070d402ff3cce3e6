"""Fetch serves the batches producers wrote (compressed, same boundaries, producer id,
epoch and sequence), kept beside the log (broker/batch_passthrough.py); rows are
re-encoded wherever a kept batch may not be served."""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from harness import ServerProcess
from kafka_wire import RawClient, kio_request

import streamlab
from streamlab.protocol.batch_encoding import encode_batch
from streamlab.protocol.batch_layout import rebase
from streamlab.protocol.record_batch import RecordBatch, WireRecord, decode_batches
from streamlab.storage.wire_batches import WireBatchStore

CODECS = ["gzip", "snappy", "lz4", "zstd"]
MS = datetime.timedelta(milliseconds=1)
KCAT = "/usr/bin/kcat"
N = 300  # records per test topic


def produce(client: RawClient, topic: str, batch: bytes, partition: int = 0) -> int:
    data = [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]
    body = kio_request(0, 9, transactional_id=None, acks=-1, timeout=5000 * MS, topic_data=data)
    answer = client.call(body).responses[0].partition_responses[0]
    assert answer.error_code.value == 0, answer
    return int(answer.base_offset)


def fetch(client: RawClient, topic: str, offset: int, *, version: int = 12, isolation: int = 0,
          max_bytes: int = 1 << 20) -> Any:  # fmt: skip
    fields: dict[str, Any] = {
        "max_wait": 0 * MS, "min_bytes": 1, "max_bytes": 50 << 20, "isolation_level": isolation,
        "topics": [{"topic": topic, "partitions": [
            {"partition": 0, "fetch_offset": offset, "partition_max_bytes": max_bytes}]}],
    }  # fmt: skip
    if version >= 7:
        fields["forgotten_topics_data"] = []
    return client.call(kio_request(1, version, **fields)).responses[0].partitions[0]


def batches_of(data: bytes) -> list[bytes]:
    """The batches in a Fetch response's records field, each as its bytes."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        size = 12 + int.from_bytes(data[pos + 8 : pos + 12], "big")
        out.append(data[pos : pos + size])
        pos += size
    return out


def values(data: bytes) -> list[bytes | None]:
    return [r.value for b in decode_batches(data) if not b.is_control for r in b.records]


def served(batch: bytes, base: int) -> bytes:
    """``batch`` as Kafka serves it: the broker's base offset and leader epoch 0 written in."""
    return rebase(batch, base, partition_leader_epoch=0)


def record_batch(
    texts: list[str], codec: str = "none", start: int = 1_750_000_000_000, **header: Any
) -> bytes:  # fmt: skip
    records = [WireRecord(i, start + i, b"k%d" % (i % 3), t.encode(), (("h", b"%d" % i),)) for i, t in enumerate(texts)]
    return encode_batch(records, compression=codec, **header)  # type: ignore[arg-type]


@pytest.fixture
def create(shared_server: ServerProcess, create_shared_topic: Callable[..., str]) -> Callable[..., str]:
    return create_shared_topic


# --- what goes out on the wire ------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_the_fetch_response_holds_the_producers_batch_byte_for_byte(
    codec: str, shared_server: ServerProcess, create: Callable[..., str]
) -> None:
    topic = create()
    first = record_batch([f"first {i}" for i in range(5)], codec, producer_id=7, producer_epoch=2, base_sequence=0)
    second = record_batch([f"second {i}" for i in range(200)], codec, producer_id=7, producer_epoch=2,
                          base_sequence=5)  # fmt: skip
    with RawClient(shared_server.bootstrap) as client:
        assert produce(client, topic, first) == 0
        assert produce(client, topic, second) == 5
        assert fetch(client, topic, 0).records == served(first, 0) + served(second, 5)
        # A fetch inside a batch gets the whole batch, as from Kafka (clients skip to the offset).
        assert fetch(client, topic, 7).records == served(second, 5)
        if codec == "zstd":  # before Fetch v10 a client cannot take zstd: rows re-encoded
            old = fetch(client, topic, 0, version=9).records
            assert {b.compression for b in decode_batches(old)} == {"none"}
            assert values(old) == [f"first {i}".encode() for i in range(5)] + [
                f"second {i}".encode() for i in range(200)
            ]
        else:
            assert fetch(client, topic, 0, version=9).records == served(first, 0) + served(second, 5)


def test_a_batch_too_big_for_the_limit_goes_out_as_rows_cut_to_fit(
    shared_server: ServerProcess, create: Callable[..., str]
) -> None:
    topic = create()
    big = record_batch([f"{i:04d}" + "x" * 200 for i in range(100)], "none")
    small = record_batch(["after"], "gzip")
    with RawClient(shared_server.bootstrap) as client:
        produce(client, topic, big)
        produce(client, topic, small)
        cut = fetch(client, topic, 0, max_bytes=2000).records
        assert 0 < len(cut) <= 2000 and values(cut) == [
            f"{i:04d}".encode() + b"x" * 200 for i in range(len(values(cut)))
        ]
        # the whole response: the big batch as sent, then the small one
        assert fetch(client, topic, 0).records == served(big, 0) + served(small, 100)


def test_records_the_broker_rewrites_are_re_encoded(shared_server: ServerProcess, create: Callable[..., str]) -> None:
    """LogAppendTime, a topic compression.type that is not the producer's, records with no
    timestamp: the broker changes what the batch says, so its rows are served."""
    log_append = create(config={"message.timestamp.type": "LogAppendTime"})
    recompressed = create(config={"compression.type": "gzip"})
    same_codec = create(config={"compression.type": "lz4"})
    plain = create()
    with RawClient(shared_server.bootstrap) as client:
        for topic in (log_append, recompressed):
            produce(client, topic, record_batch(["a", "b"], "lz4"))
            got = fetch(client, topic, 0).records
            assert [b.compression for b in decode_batches(got)] == ["none"] and values(got) == [b"a", b"b"]
        batch = record_batch(["a", "b"], "lz4")
        produce(client, same_codec, batch)
        assert fetch(client, same_codec, 0).records == served(batch, 0)
        untimed = encode_batch([WireRecord(0, -1, None, b"no time")], compression="gzip")
        produce(client, plain, untimed)
        (got,) = decode_batches(fetch(client, plain, 0).records)
        assert got.compression == "none" and got.records[0].timestamp > 0


# --- real producers and consumers ---------------------------------------------------------


def confluent_produce(bootstrap: str, topic: str, codec: str, **config: Any) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 50,
                         "enable.idempotence": True, **config})  # fmt: skip
    for i in range(N):
        producer.produce(topic, key=b"key-%d" % (i % 5), value=b"value %d " % i + b"z" * 50, partition=0,
                         headers=[("n", b"%d" % i)])  # fmt: skip
    assert producer.flush(15) == 0


def expected() -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    return [(b"key-%d" % (i % 5), b"value %d " % i + b"z" * 50, [("n", b"%d" % i)]) for i in range(N)]


def confluent_consume(bootstrap: str, topic: str, n: int, **config: Any) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False,
                         **config})  # fmt: skip
    got: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            got.extend(m for m in consumer.consume(500, 0.2) if m.error() is None)
    finally:
        consumer.close()
    return got


def kafka_python_consume(bootstrap: str, topic: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KTopicPartition
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    got: list[Any] = []
    try:
        consumer.assign([KTopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + 20
        while len(got) < N and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(records)
    finally:
        consumer.close()
    return [(r.key, r.value, list(r.headers)) for r in got]


async def aiokafka_consume(bootstrap: str, topic: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    got: list[Any] = []
    try:
        consumer.assign([ATopicPartition(topic, 0)])
        async with asyncio.timeout(20):
            while len(got) < N:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    got.extend(records)
    finally:
        await consumer.stop()
    return [(r.key, r.value, list(r.headers)) for r in got]


def kcat_consume(bootstrap: str, topic: str) -> list[str]:
    done = subprocess.run([KCAT, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k|%s|%h\n"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_batches_are_served_compressed_and_every_client_reads_them(
    codec: str, shared_server: ServerProcess, create: Callable[..., str]
) -> None:
    topic = create()
    confluent_produce(shared_server.bootstrap, topic, codec)
    with RawClient(shared_server.bootstrap) as client:
        batches = decode_batches(fetch(client, topic, 0).records)
    assert sum(len(b.records) for b in batches) == N
    assert {b.compression for b in batches} == {codec}
    assert all(b.producer_id >= 0 and b.base_sequence == b.base_offset for b in batches)  # one producer from 0

    want = expected()
    got = confluent_consume(shared_server.bootstrap, topic, N)
    assert [(m.key(), m.value(), m.headers()) for m in got] == want
    assert [m.offset() for m in got] == list(range(N))
    assert asyncio.run(aiokafka_consume(shared_server.bootstrap, topic)) == want
    assert kcat_consume(shared_server.bootstrap, topic) == [f"{k.decode()}|{v.decode()}|n={h[0][1].decode()}"
                                                              for k, v, h in want]  # fmt: skip
    if codec == "gzip":  # kafka-python decompresses the others only with optional packages
        assert kafka_python_consume(shared_server.bootstrap, topic) == want


# --- when a kept batch is not served --------------------------------------------------------


@pytest.fixture
def served_lab(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """An embedded lab served in this process: its retention and compaction run on demand."""
    lab = streamlab.connect(tmp_path / "data")
    try:
        yield lab, lab.serve()
    finally:
        lab.close()


def delete_records(client: RawClient, topic: str, offset: int) -> None:
    body = kio_request(21, 2, timeout=5000 * MS,
                       topics=[{"name": topic, "partitions": [{"partition_index": 0, "offset": offset}]}])  # fmt: skip
    assert client.call(body).topics[0].partitions[0].error_code.value == 0


def test_delete_records_and_retention_serve_what_the_log_holds(served_lab: tuple[Any, str]) -> None:
    lab, bootstrap = served_lab
    lab.create_topic("t", config={"retention.ms": 600_000})
    sent = [record_batch([f"b{n} r{i}" for i in range(10)], "snappy", start=1_750_000_000_000 + n * 100)
            for n in range(3)]  # fmt: skip
    with RawClient(bootstrap) as client:
        for batch in sent:
            produce(client, "t", batch)
        lab.roll("t")
        delete_records(client, "t", 15)  # inside the second batch: its rows are served from 15
        got = fetch(client, "t", 15).records
        assert batches_of(got)[-1] == served(sent[2], 20)
        assert values(got) == [f"b1 r{i}".encode() for i in range(5, 10)] + [f"b2 r{i}".encode() for i in range(10)]
        assert [b.compression for b in decode_batches(got)] == ["none", "snappy"]

        fourth = record_batch(["b3 r0"], "gzip", start=int(time.time() * 1000))
        produce(client, "t", fourth)
        lab.apply_retention(now=datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5))
        assert fetch(client, "t", 30).records == served(fourth, 30)
        assert fetch(client, "t", 0).error_code.value == 1  # OFFSET_OUT_OF_RANGE, as the log says


def test_a_compacted_range_is_re_encoded_not_served_stale(served_lab: tuple[Any, str], tmp_path: Path) -> None:
    """Compaction drops the kept batches of the sealed range (the log start of a compacted
    topic seldom moves, so they would outgrow the compacted log): it is served as rows."""
    lab, bootstrap = served_lab
    lab.create_topic("c", config={"cleanup.policy": "compact"})
    first = encode_batch([WireRecord(i, 1_750_000_000_000 + i, b"k%d" % (i % 2), b"old %d" % i) for i in range(4)],
                         compression="lz4")  # fmt: skip
    untouched = encode_batch([WireRecord(0, 1_750_000_001_000, b"other", b"kept")], compression="lz4")
    with RawClient(bootstrap) as client:
        produce(client, "c", first)
        produce(client, "c", untouched)
        lab.roll("c")
        latest = encode_batch([WireRecord(0, 1_750_000_002_000, b"k0", b"new")], compression="lz4")
        produce(client, "c", latest)
        lab.roll("c")
        lab.apply_retention()
        got = fetch(client, "c", 0).records
    records = [(r.offset, r.key, r.value) for b in decode_batches(got) for r in b.records]
    # k0's older records are gone; k1's newest (offset 3) and "other" stay
    assert records == [(3, b"k1", b"old 3"), (4, b"other", b"kept"), (5, b"k0", b"new")]
    assert served(untouched, 4) not in batches_of(got)
    assert list((tmp_path / "data" / "topics" / "c" / "0").glob("wire-*.batches")) == []


def test_a_damaged_kept_batch_is_never_served(
    served_lab: tuple[Any, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lab, bootstrap = served_lab
    lab.create_topic("d")
    batch = record_batch([f"r{i}" for i in range(20)], "gzip")
    with RawClient(bootstrap) as client:
        produce(client, "d", batch)
        assert fetch(client, "d", 0).records == served(batch, 0)
        (kept,) = (tmp_path / "data" / "topics" / "d" / "0").glob("wire-*.batches")
        data = bytearray(kept.read_bytes())
        data[-5] ^= 0x10  # inside the compressed records
        kept.write_bytes(bytes(data))
        got = fetch(client, "d", 0).records
        assert fetch(client, "d", 0).records == got  # and never looked at again
    assert [b.compression for b in decode_batches(got)] == ["none"]
    assert values(got) == [f"r{i}".encode() for i in range(20)]
    assert [r.message for r in caplog.records if "fails its checks" in r.message] == [
        f"{kept}: the raw batch at offset 0 fails its checks; its records are re-encoded"
    ]


# --- transactions ---------------------------------------------------------------------------


def test_transactional_batches_under_read_committed(shared_server: ServerProcess, create: Callable[..., str]) -> None:
    topic = create()
    producer = Producer({"bootstrap.servers": shared_server.bootstrap, "transactional.id": f"tx-{topic}",
                         "compression.type": "zstd", "linger.ms": 20})  # fmt: skip
    producer.init_transactions(10)
    for outcome in ("commit", "abort", "commit"):
        producer.begin_transaction()
        for i in range(50):
            producer.produce(topic, value=f"{outcome} {i}".encode(), partition=0)
        producer.flush(10)
        getattr(producer, f"{outcome}_transaction")(10)
    committed = confluent_consume(shared_server.bootstrap, topic, 100, **{"isolation.level": "read_committed"})
    assert [m.value() for m in committed] == [f"commit {i}".encode() for i in range(50)] * 2

    with RawClient(shared_server.bootstrap) as client:

        def data_batches(isolation: int) -> list[RecordBatch]:
            return [b for b in decode_batches(fetch(client, topic, 0, isolation=isolation).records) if not b.is_control]

        uncommitted = data_batches(0)
        assert {(b.compression, b.is_transactional) for b in uncommitted} == {("zstd", True)}
        assert sum(len(b.records) for b in uncommitted) == 150  # aborted records too, as Kafka
        read_committed = data_batches(1)
        assert [r.value for b in read_committed for r in b.records] == [m.value() for m in committed]
        assert all(b.compression == "zstd" for b in read_committed)  # the committed ones, as sent


# --- restarts -------------------------------------------------------------------------------


def test_kept_batches_outlive_a_kill_and_offsets_a_crash_gave_back_are_not_served_stale(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    topic = create_topic()
    now = int(time.time() * 1000)  # retention runs on open: records of now stay
    first = record_batch(["before"] * 3, "lz4", start=now)
    with RawClient(server.bootstrap) as client:
        produce(client, topic, first)
    server.kill()
    # What an OS crash can leave: the store holding a batch at offsets the log never kept
    # (the log keeps only what was fsynced). Those offsets are handed out again.
    stale = WireBatchStore(server.data_dir / "topics" / topic / "0", valid_below=1 << 40)
    stale.keep(3, record_batch(["lost"] * 2, "lz4", start=now))
    stale.close()
    server.start()
    second = record_batch(["after"] * 2, "zstd", start=now)
    with RawClient(server.bootstrap) as client:
        assert produce(client, topic, second) == 3
        assert fetch(client, topic, 0).records == served(first, 0) + served(second, 3)


def test_many_compacted_away_batches_are_read_past(served_lab: tuple[Any, str]) -> None:
    lab, bootstrap = served_lab
    lab.create_topic("many", config={"cleanup.policy": "compact"})
    sent = [encode_batch([WireRecord(0, 1_750_000_000_000 + i, b"k%d" % (i % 2), b"v%d" % i)], compression="gzip")
            for i in range(150)]  # fmt: skip
    with RawClient(bootstrap) as client:
        for batch in sent:
            produce(client, "many", batch)
        lab.roll("many")
        lab.apply_retention()
        got = fetch(client, "many", 0).records
    # only each key's newest record is left; the compacted range is served as rows
    records = [(r.offset, r.key, r.value) for b in decode_batches(got) for r in b.records]
    assert records == [(148, b"k0", b"v148"), (149, b"k1", b"v149")]
