"""confluent-kafka (librdkafka) against `streamlab serve`."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
from harness import ServerProcess


def consume_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 20) -> list[Message]:
    """Every record of ``topic`` from the beginning, read by assignment (no group)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                got.append(message)
        return got
    finally:
        consumer.close()


def test_admin_topics_partitions_and_configs(shared_server: ServerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": shared_server.bootstrap})
    created = admin.create_topics([NewTopic("ck-admin", 2, 1, config={"retention.ms": "3600000",
                                                                       "cleanup.policy": "compact"})])  # fmt: skip
    created["ck-admin"].result(10)
    again = admin.create_topics([NewTopic("ck-admin", 2, 1)])
    with pytest.raises(Exception) as info:
        again["ck-admin"].result(10)
    assert info.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    admin.create_partitions([NewPartitions("ck-admin", 5)])["ck-admin"].result(10)
    assert len(admin.list_topics(timeout=10).topics["ck-admin"].partitions) == 5
    shrink = admin.create_partitions([NewPartitions("ck-admin", 2)])
    with pytest.raises(Exception) as info:
        shrink["ck-admin"].result(10)
    assert info.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    resource = ConfigResource(ConfigResource.Type.TOPIC, "ck-admin")
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "3600000" and not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "compact"
    assert configs["max.message.bytes"].is_default

    bad = admin.create_topics([NewTopic("ck-bad", 1, 1, config={"retention.mss": "1"})])
    with pytest.raises(Exception) as info:
        bad["ck-bad"].result(10)
    assert info.value.args[0].code() == KafkaError.INVALID_CONFIG
    admin.delete_topics(["ck-admin"])["ck-admin"].result(10)
    assert "ck-admin" not in admin.list_topics(timeout=10).topics


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_idempotent_acks_all_produce_then_consume(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str], compression: str
) -> None:
    topic = create_shared_topic(partitions=3)
    producer = Producer({
        "bootstrap.servers": shared_server.bootstrap, "enable.idempotence": True, "acks": "all",
        "compression.type": compression, "linger.ms": 5,
    })  # fmt: skip
    acked: list[tuple[int, int, bytes]] = []
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, message: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked.append((message.partition(), message.offset(), message.value()))

    for i in range(2000):
        producer.produce(topic, key=b"key-%d" % (i % 50), value=b"%s payload %d " % (compression.encode(), i) * 3,
                         headers=[("n", str(i).encode())], on_delivery=delivered)  # fmt: skip
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == [] and len(acked) == 2000

    got = consume_all(shared_server.bootstrap, topic, 3, 2000)
    assert sorted((m.partition(), m.offset(), m.value()) for m in got) == sorted(acked)
    for message in got:
        assert message.headers() == [("n", message.value().split(b" ")[2])]
    for p in range(3):  # each partition in produce order, dense offsets from 0
        numbers = [int(m.value().split(b" ")[2]) for m in got if m.partition() == p]
        assert numbers == sorted(numbers)
        assert [m.offset() for m in got if m.partition() == p] == list(range(len(numbers)))
