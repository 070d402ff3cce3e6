"""kafka:// only: librdkafka's 3-broker mock cluster, a broker outage, and what differs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import pytest
from confluent_kafka.admin import AdminClient

import streamlab
from streamlab import RecordMetadata, TopicPartition
from streamlab.errors import ConfigError, GroupNotEmptyError, UnsupportedOperationError
from streamlab.kafka.backend import KafkaBackend
from streamlab.kafka.mock_cluster import MockCluster


@pytest.fixture
def cluster() -> Iterator[MockCluster]:
    """A cluster of its own: these tests take brokers down."""
    with MockCluster(brokers=3) as mock:
        yield mock


@pytest.fixture
def kafka_lab(cluster: MockCluster) -> Iterator[streamlab.Lab]:
    with streamlab.connect("kafka://" + cluster.bootstrap) as lab:
        yield lab


def _leaders(cluster: MockCluster, topic: str) -> dict[int, int]:
    metadata = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(topic, timeout=10)
    return {p: m.leader for p, m in metadata.topics[topic].partitions.items()}


def test_connect_gives_a_kafka_lab_on_three_brokers(cluster: MockCluster, kafka_lab: streamlab.Lab) -> None:
    assert isinstance(kafka_lab.backend, KafkaBackend)
    assert len(cluster.bootstrap.split(",")) == 3
    kafka_lab.create_topic("spread", partitions=6)
    assert _leaders(cluster, "spread") == {0: 1, 1: 2, 2: 3, 3: 1, 4: 2, 5: 3}
    with pytest.raises(ConfigError):
        streamlab.connect("kafka://no-port-here")


def test_no_acknowledged_record_is_lost_while_a_broker_is_down(
    cluster: MockCluster, kafka_lab: streamlab.Lab, make_name: Callable[[str], str]
) -> None:
    topic, group = make_name("outage"), make_name("group")
    kafka_lab.create_topic(topic, partitions=6, replication_factor=3)
    cluster.set_coordinator(group, 1)  # the outage is of broker 2, a partition leader only
    acked: dict[tuple[int, int], object] = {}
    seen: dict[tuple[int, int], object] = {}

    def keep(futures: list[Future[RecordMetadata]], values: range) -> None:
        for f, value in zip(futures, values, strict=True):
            md = f.result(timeout=30)
            acked[(md.partition, md.offset)] = value

    def consume(consumer: streamlab.Consumer, until: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not until() and time.monotonic() < deadline:
            for r in consumer.poll(timeout=0.2, max_records=500):
                assert (r.partition, r.offset) not in seen, "a record was delivered twice"
                seen[(r.partition, r.offset)] = r.value

    with kafka_lab.producer() as p:
        keep([p.send(topic, value=i, key=f"k{i}") for i in range(600)], range(600))
    with kafka_lab.consumer([topic], group=group, auto_offset_reset="earliest") as c, kafka_lab.producer() as p:
        consume(c, lambda: len(seen) >= 300, 20)
        cluster.broker_down(2)  # leads partitions 1 and 4
        during = [p.send(topic, value=1000 + i, key=f"k{i}") for i in range(300)]
        led_by_others = {k for k in acked if k[0] not in (1, 4)}
        consume(c, lambda: led_by_others <= seen.keys(), 20)
        assert led_by_others <= seen.keys(), "consumption stopped on the brokers that are up"
        cluster.set_leader(topic, 1, 3)
        cluster.set_leader(topic, 4, 1)  # leadership moves while broker 2 is still down
        keep(during, range(1000, 1300))
        consume(c, lambda: acked.keys() <= seen.keys(), 30)
        assert acked.keys() <= seen.keys(), f"missing {sorted(acked.keys() - seen.keys())[:5]}"
        cluster.broker_up(2)
        keep([p.send(topic, value=2000 + i, key=f"k{i}") for i in range(60)], range(2000, 2060))
        consume(c, lambda: acked.keys() <= seen.keys(), 30)
    assert seen == acked
    assert sorted(kafka_lab.offsets(topic)["high_watermark"]) == sorted(
        sum(1 for k in acked if k[0] == part) for part in range(6)
    )


def test_what_needs_the_embedded_broker_says_so(kafka_lab: streamlab.Lab) -> None:
    kafka_lab.create_topic("t", partitions=1)
    with pytest.raises(UnsupportedOperationError, match="embedded broker"):
        kafka_lab.rebalances("any-group")
    with pytest.raises(UnsupportedOperationError):
        kafka_lab.roll("t")
    with pytest.raises(UnsupportedOperationError, match="mock cluster"):
        kafka_lab.create_partitions("t", 2)
    with pytest.raises(UnsupportedOperationError):  # no ListGroups in the mock
        kafka_lab.groups()
    with pytest.raises(UnsupportedOperationError):  # nor DescribeGroups
        kafka_lab.describe_group("any-group")
    assert kafka_lab.topics()["bytes"].isna().all()  # confluent-kafka has no DescribeLogDirs


def test_reset_offsets_applies_to_an_empty_group(kafka_lab: streamlab.Lab) -> None:
    kafka_lab.create_topic("t", partitions=1)
    tp = TopicPartition("t", 0)
    with kafka_lab.producer() as p:
        for i in range(10):
            p.send("t", value=i, timestamp=1_700_000_000_000 + i * 1000)
    with kafka_lab.consumer(group="offline", enable_auto_commit=False) as c:  # assigned: never a member
        c.assign([tp])
        c.commit({tp: 4})
    applied = kafka_lab.reset_offsets("offline", to="latest", dry_run=False)
    assert applied[["current", "new", "skipped"]].values.tolist() == [[4, 10, 6]]
    assert kafka_lab.lag("offline")["lag"].tolist() == [0]
    with kafka_lab.consumer(["t"], group="online", auto_offset_reset="earliest") as c:
        deadline = time.monotonic() + 20
        while not c.poll(timeout=0.2) and time.monotonic() < deadline:
            pass
        c.commit()
        with pytest.raises(GroupNotEmptyError):
            kafka_lab.reset_offsets("online", to="earliest", dry_run=False)


def test_librdkafka_has_no_eager_sticky_assignor(kafka_lab: streamlab.Lab) -> None:
    kafka_lab.create_topic("t")
    with pytest.raises(ConfigError, match="cooperative-sticky"):
        kafka_lab.consumer(["t"], group="g", assignor="sticky")
    with kafka_lab.consumer(["t"], group="g", assignor=["range", "cooperative-sticky"]) as c:
        c.poll(timeout=0.1)  # the default list: cut to the eager assignors librdkafka can mix


def test_a_large_replay_shows_progress(
    kafka_lab: streamlab.Lab, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import streamlab.front.lab

    kafka_lab.create_topic("t", partitions=2)
    with kafka_lab.producer() as p:
        for i in range(50):
            p.send("t", value={"i": i})
    monkeypatch.setattr(streamlab.front.lab, "PROGRESS_FROM_ROWS", 10)
    assert len(kafka_lab.replay("t")) == 50
    assert "replay t" in capsys.readouterr().err
    monkeypatch.setattr(streamlab.front.lab, "PROGRESS_FROM_ROWS", 100)
    kafka_lab.replay("t")
    assert "replay t" not in capsys.readouterr().err
