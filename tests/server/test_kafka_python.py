"""kafka-python (a pure-Python client) against `streamlab serve`."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

import pytest
from harness import ServerProcess

with warnings.catch_warnings():  # kafka-python loads schemas with deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewPartitions, NewTopic
    from kafka.errors import TopicAlreadyExistsError

BASE_TS = 1_750_000_000_000


@pytest.fixture
def admin(shared_server: ServerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=shared_server.bootstrap, client_id="kp-admin")
    try:
        yield client
    finally:
        client.close()


def test_admin_creates_and_grows_topics(admin: KafkaAdminClient) -> None:
    admin.create_topics([NewTopic("kp-admin", 2, 1, topic_configs={"retention.ms": "3600000"})])
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic("kp-admin", 2, 1)])
    admin.create_partitions({"kp-admin": NewPartitions(total_count=3)})
    (described,) = admin.describe_topics(["kp-admin"])
    assert len(described["partitions"]) == 3
    assert "kp-admin" in admin.list_topics()


def test_produce_acks_all_consume_and_seek_by_timestamp(shared_server: ServerProcess, admin: KafkaAdminClient) -> None:
    admin.create_topics([NewTopic("kp-data", 2, 1, topic_configs={"retention.ms": "-1"})])
    producer = KafkaProducer(bootstrap_servers=shared_server.bootstrap, acks="all", compression_type="gzip")
    futures = [
        producer.send("kp-data", key=b"k%d" % (i % 7), value=b"value-%d" % i, timestamp_ms=BASE_TS + i * 10)
        for i in range(300)
    ]
    producer.flush(timeout=30)
    metadata = [f.get(timeout=10) for f in futures]
    producer.close()
    assert {m.partition for m in metadata} == {0, 1}

    consumer = KafkaConsumer(bootstrap_servers=shared_server.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition("kp-data", p) for p in (0, 1)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 300 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(batch)
        assert sorted(r.value for r in got) == sorted(b"value-%d" % i for i in range(300))
        for m in metadata:  # every acknowledged offset holds what was sent there
            assert any(r.partition == m.partition and r.offset == m.offset for r in got)

        # Seek by time: the first record at or after the 150th record's timestamp.
        target = BASE_TS + 150 * 10
        found = consumer.offsets_for_times({tp: target for tp in partitions})
        for tp, offset_ts in found.items():
            expected = min((r for r in got if r.partition == tp.partition and r.timestamp >= target),
                           key=lambda r: r.offset)  # fmt: skip
            assert (offset_ts.offset, offset_ts.timestamp) == (expected.offset, expected.timestamp)
            consumer.seek(tp, offset_ts.offset)
        after = []
        deadline = time.monotonic() + 20
        while len(after) < 150 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                after.extend(batch)
        assert sorted(r.value for r in after) == sorted(b"value-%d" % i for i in range(150, 300))
        late = consumer.offsets_for_times({partitions[0]: BASE_TS + 10**9})
        assert late[partitions[0]] is None  # nothing that late: Kafka's -1
    finally:
        consumer.close()


def test_idempotent_producer_writes_each_record_once(shared_server: ServerProcess, admin: KafkaAdminClient) -> None:
    admin.create_topics([NewTopic("kp-idempotent", 2, 1)])
    producer = KafkaProducer(bootstrap_servers=shared_server.bootstrap, acks="all", enable_idempotence=True,
                             linger_ms=2, compression_type="gzip")  # fmt: skip
    futures = [producer.send("kp-idempotent", key=b"k%d" % (i % 5), value=b"v%d" % i) for i in range(400)]
    producer.flush(timeout=30)
    metadata = [f.get(timeout=10) for f in futures]
    producer.close()
    # InitProducerId gave it a producer id: the batches carried it, with sequences
    by_partition: dict[int, list[int]] = {}
    for m in metadata:
        by_partition.setdefault(m.partition, []).append(m.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets))), "dense offsets, in send order, nothing twice"

    consumer = KafkaConsumer(bootstrap_servers=shared_server.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")  # fmt: skip
    try:
        consumer.assign([TopicPartition("kp-idempotent", p) for p in (0, 1)])
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(got) < 400 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got += [r.value for r in batch]
    finally:
        consumer.close()
    assert sorted(got) == sorted(b"v%d" % i for i in range(400))
