"""kill -9 under load, and the data directory shared with the embedded broker."""

from __future__ import annotations

import datetime
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from harness import ServerProcess
from kafka_wire import RawClient, kio_request

import streamlab

PARTITIONS = 3


def read_back(bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 30) -> list[Message]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            got.extend(m for m in consumer.consume(1000, 0.5) if m.error() is None)
        return got
    finally:
        consumer.close()


def test_kill_9_while_producing_keeps_every_acknowledged_record_once_in_order(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    topic = create_topic(partitions=PARTITIONS)
    producer = Producer({
        "bootstrap.servers": server.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 2,
        "message.timeout.ms": 60_000, "reconnect.backoff.max.ms": 200, "retry.backoff.ms": 50,
    })  # fmt: skip
    acked: dict[int, list[tuple[int, int]]] = defaultdict(list)  # partition -> [(sequence, offset)]
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, message: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked[message.partition()].append((int(message.value().split(b":")[1]), message.offset()))

    stop = threading.Event()
    produced = [0] * PARTITIONS

    def produce() -> None:
        while not stop.is_set():
            for p in range(PARTITIONS):
                try:
                    producer.produce(topic, value=b"%d:%d" % (p, produced[p]), partition=p, on_delivery=delivered)
                    produced[p] += 1
                except BufferError:  # the local queue is full (the broker is down): wait
                    producer.poll(0.05)
            producer.poll(0)
            time.sleep(0.0005)

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        for _ in range(2):  # two crashes, each in the middle of the stream
            # Wait for fresh acknowledgements (not a fixed sleep: a loaded machine reconnects slowly).
            target = sum(len(v) for v in acked.values()) + 300
            deadline = time.monotonic() + 60
            while sum(len(v) for v in acked.values()) < target and time.monotonic() < deadline:
                time.sleep(0.05)
            acked_before = sum(len(v) for v in acked.values())
            server.kill()
            time.sleep(0.3)
            server.start()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    assert producer.flush(60) == 0
    assert errors == []
    total = sum(produced)
    assert sum(len(v) for v in acked.values()) == total > acked_before > 0

    got = read_back(server.bootstrap, topic, PARTITIONS, total)
    for p in range(PARTITIONS):
        stored = [(int(m.value().split(b":")[1]), m.offset()) for m in got if m.partition() == p]
        assert sorted(acked[p]) == sorted(stored)  # every acknowledged record, once, where it was acked
        assert [seq for seq, _ in sorted(stored, key=lambda s: s[1])] == list(range(produced[p]))  # in order


def test_data_directory_is_shared_with_the_embedded_broker(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    topic = create_topic(partitions=2)
    producer = Producer({"bootstrap.servers": server.bootstrap, "acks": "all"})
    for i in range(100):
        producer.produce(topic, key=b"k%d" % i, value=b"wire %d" % i, headers=[("via", b"kafka")])
    assert producer.flush(20) == 0
    assert server.stop() == 0
    assert "stopped" in server.log()

    with streamlab.connect(server.data_dir) as lab:
        offsets = lab.offsets(topic)
        assert int((offsets["high_watermark"] - offsets["log_start_offset"]).sum()) == 100
        with lab.consumer(None, auto_offset_reset="earliest") as consumer:
            consumer.assign([streamlab.TopicPartition(topic, p) for p in range(2)])
            records = consumer.poll(timeout=5, max_records=1000)
        assert sorted(r.value for r in records) == sorted(b"wire %d" % i for i in range(100))
        assert all(r.headers == {"via": b"kafka"} for r in records)
        with lab.producer() as embedded:  # and the other way round
            for i in range(10):
                embedded.send(topic, value={"n": i}, key=f"user-{i}", partition=1)
            embedded.send(topic, value="text", partition=0)

    server.start()
    got = read_back(server.bootstrap, topic, 2, 111)
    assert len(got) == 111
    mine = [m for m in got if not m.value().startswith(b"wire ")]
    assert sorted(m.value() for m in mine) == sorted([b'{"n":%d}' % i for i in range(10)] + [b"text"])
    json_record = next(m for m in mine if m.value() == b'{"n":0}')
    assert json_record.key() == b"user-0"
    assert dict(json_record.headers() or []) == {"streamlab.key.format": b"2", "streamlab.value.format": b"3"}


def test_sigterm_answers_parked_long_polls_then_exits(server: ServerProcess, create_topic: Callable[..., str]) -> None:
    topic = create_topic()
    long_poll = kio_request(1, 12, max_wait=datetime.timedelta(seconds=25), min_bytes=1, forgotten_topics_data=[],
                            topics=[{"topic": topic, "partitions": [
                                {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}])  # fmt: skip
    with RawClient(server.bootstrap) as client:
        correlation_id = client.send(long_poll)
        time.sleep(0.5)  # parked
        start = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - start < 10
        answer = client.recv(1, 12, correlation_id)  # answered (empty) before the connection closed
        assert answer.responses[0].partitions[0].error_code == 0
        assert client.is_closed_by_server()
    assert "stopped" in server.log()
