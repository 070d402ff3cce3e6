"""Topic auto-creation as Kafka does it (auto.create.topics.enable, num.partitions), over `streamlab serve`."""

from __future__ import annotations

import datetime
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from harness import ServerProcess
from kafka_wire import RawClient, kio_request

import streamlab
from streamlab.errors import UnknownTopicError

with warnings.catch_warnings():  # kafka-python loads schemas with deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC = 3, 17


@pytest.fixture(scope="module")
def no_auto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("no-auto")
    proc = ServerProcess(tmp / "data", tmp / "server.log", args=("--no-auto-create-topics",))
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def metadata(bootstrap: str, names: list[str], *, allow: bool, version: int = 12) -> dict[str, tuple[int, int]]:
    """{topic: (error code, partition count)} from one Metadata request."""
    with RawClient(bootstrap) as client:
        body = kio_request(3, version, topics=[{"name": n, "topic_id": None} for n in names],
                           allow_auto_topic_creation=allow, include_topic_authorized_operations=False)  # fmt: skip
        response = client.call(body)
    return {t.name: (t.error_code.value, len(t.partitions)) for t in response.topics}


def test_metadata_creates_unknown_topics_when_allowed(shared_server: ServerProcess) -> None:
    assert metadata(shared_server.bootstrap, ["ac-refused"], allow=False) == {
        "ac-refused": (UNKNOWN_TOPIC_OR_PARTITION, 0)
    }
    answer = metadata(shared_server.bootstrap, ["ac-new", "bad name!", "ac-refused"], allow=True)
    assert answer == {"ac-new": (0, 1), "bad name!": (INVALID_TOPIC, 0), "ac-refused": (0, 1)}
    assert metadata(shared_server.bootstrap, ["ac-new"], allow=False) == {"ac-new": (0, 1)}
    assert "created topic 'ac-new'" in shared_server.log()


def test_metadata_v0_to_v3_always_allow_creation(shared_server: ServerProcess) -> None:
    with RawClient(shared_server.bootstrap) as client:
        response = client.call(kio_request(3, 1, topics=[{"name": "ac-v1"}]))
    assert [(t.name, t.error_code.value, len(t.partitions)) for t in response.topics] == [("ac-v1", 0, 1)]


def test_confluent_producer_to_a_fresh_topic_succeeds_quickly(shared_server: ServerProcess) -> None:
    producer = Producer({"bootstrap.servers": shared_server.bootstrap, "message.timeout.ms": 5000})
    reports: list[tuple[KafkaError | None, int]] = []
    start = time.monotonic()
    for i in range(3):
        producer.produce("ac-confluent", value=b"v%d" % i, on_delivery=lambda e, m: reports.append((e, m.offset())))
    assert producer.flush(10) == 0
    assert time.monotonic() - start < 5
    assert reports == [(None, 0), (None, 1), (None, 2)]


def test_kafka_python_producer_to_a_fresh_topic(shared_server: ServerProcess) -> None:
    producer = KafkaProducer(bootstrap_servers=shared_server.bootstrap, max_block_ms=5000)
    try:
        start = time.monotonic()
        meta = producer.send("ac-kafka-python", value=b"hello").get(timeout=10)
        assert (meta.partition, meta.offset) == (0, 0)
        assert time.monotonic() - start < 5
    finally:
        producer.close()


def test_with_auto_creation_off_unknown_topics_fail_fast(no_auto_server: ServerProcess) -> None:
    assert metadata(no_auto_server.bootstrap, ["off-raw"], allow=True) == {"off-raw": (UNKNOWN_TOPIC_OR_PARTITION, 0)}

    # librdkafka gives a topic topic.metadata.propagation.max.ms (30 s by default) to appear
    # before failing its messages with UNKNOWN_TOPIC, whatever the broker says.
    producer = Producer({"bootstrap.servers": no_auto_server.bootstrap, "topic.metadata.propagation.max.ms": 1000})
    errors: list[KafkaError] = []
    start = time.monotonic()
    producer.produce("off-confluent", value=b"x", on_delivery=lambda e, m: errors.append(e))
    producer.flush(10)
    assert time.monotonic() - start < 5
    assert [e.code() for e in errors] in ([KafkaError.UNKNOWN_TOPIC_OR_PART], [KafkaError._UNKNOWN_TOPIC])

    kp = KafkaProducer(bootstrap_servers=no_auto_server.bootstrap, max_block_ms=2000)
    try:
        with pytest.raises(KafkaTimeoutError):  # kafka-python's way to say the topic never appeared
            kp.send("off-kafka-python", value=b"x").get(timeout=5)
    finally:
        kp.close()
    assert "created topic" not in no_auto_server.log()


def test_num_partitions_sets_the_partitions_of_created_topics(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", tmp_path / "server.log", args=("--num-partitions", "3"))
    proc.start()
    try:
        assert metadata(proc.bootstrap, ["three"], allow=True) == {"three": (0, 3)}
    finally:
        proc.kill()


def test_produce_alone_never_creates(shared_server: ServerProcess) -> None:
    """Modern Kafka creates topics only from Metadata (and FindCoordinator for its internal
    ones), never from a Produce naming an unknown topic."""
    with RawClient(shared_server.bootstrap) as client:
        body = kio_request(0, 9, transactional_id=None, acks=1, timeout=datetime.timedelta(seconds=1), topic_data=[
            {"name": "ac-produce-only", "partition_data": [{"index": 0, "records": None}]}])  # fmt: skip
        response = client.call(body)
    assert response.responses[0].partition_responses[0].error_code.value == UNKNOWN_TOPIC_OR_PARTITION
    assert metadata(shared_server.bootstrap, ["ac-produce-only"], allow=False)["ac-produce-only"][0] == 3


def test_a_kafka_lab_follows_the_clusters_auto_creation(
    shared_server: ServerProcess, no_auto_server: ServerProcess
) -> None:
    with streamlab.connect(f"kafka://{shared_server.bootstrap}") as lab, lab.producer() as p:
        assert p.send("lab-first-send", value=1).result(timeout=15).offset == 0
    with streamlab.connect(f"kafka://{no_auto_server.bootstrap}") as lab, lab.producer() as p:
        with pytest.raises(UnknownTopicError, match=r"auto\.create\.topics\.enable=false"):
            p.send("lab-never-created", value=1)
        assert "lab-never-created" not in set(lab.topics()["name"])
