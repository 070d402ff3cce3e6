"""DeleteRecords, DeleteGroups, OffsetDelete, AlterConfigs, ListGroups v5, DescribeCluster and
config operations, driven by kafka-python's and confluent-kafka's admin clients (raw requests
where neither has the call)."""

from __future__ import annotations

import datetime
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType, Producer
from confluent_kafka import TopicPartition as CkPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)
from harness import ServerProcess
from kafka_wire import RawClient, kio_request

with warnings.catch_warnings():  # kafka-python loads schemas with deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import ConfigResource as KpConfigResource
    from kafka.admin import ConfigResourceType
    from kafka.structs import OffsetAndMetadata

GROUP_SUBSCRIBED_TO_TOPIC, NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND = 86, 68, 69


@pytest.fixture
def admin(shared_server: ServerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": shared_server.bootstrap})


@pytest.fixture
def kp_admin(shared_server: ServerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=shared_server.bootstrap, client_id="kp-admin-apis")
    try:
        yield client
    finally:
        client.close()


def produce(bootstrap: str, topic: str, count: int, partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i, partition=partition)
    assert producer.flush(10) == 0


def consume_all(bootstrap: str, topic: str, partitions: int = 1) -> list[int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        consumer.seek_to_beginning()
        offsets: list[int] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            got = consumer.poll(timeout_ms=300)
            for records in got.values():
                offsets += [r.offset for r in records]
            if not got and offsets:
                break
        return offsets
    finally:
        consumer.close()


def commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [CkPartition(t, p, o) for (t, p), o in offsets.items()])
    admin.alter_consumer_group_offsets([request])[group].result(10)


def test_delete_records_moves_the_log_start_for_good(
    shared_server: ServerProcess, admin: AdminClient, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(partitions=2)
    produce(shared_server.bootstrap, topic, 10, partition=0)
    produce(shared_server.bootstrap, topic, 4, partition=1)
    done = admin.delete_records([CkPartition(topic, 0, 6)])
    (result,) = done.values()
    assert result.result(10).low_watermark == 6
    assert consume_all(shared_server.bootstrap, topic) == [6, 7, 8, 9]
    # kafka-python: -1 means the high watermark; past it is OFFSET_OUT_OF_RANGE.
    kp_admin = KafkaAdminClient(bootstrap_servers=shared_server.bootstrap)
    try:
        answer = kp_admin.delete_records({TopicPartition(topic, 1): -1})
    finally:
        kp_admin.close()  # before the restart below
    assert answer[TopicPartition(topic, 1)]["low_watermark"] == 4
    bad = admin.delete_records([CkPartition(topic, 0, 11)])
    with pytest.raises(Exception, match=r"OFFSET_OUT_OF_RANGE|out of range"):
        next(iter(bad.values())).result(10)
    shared_server.restart()
    assert consume_all(shared_server.bootstrap, topic) == [6, 7, 8, 9]
    fresh = AdminClient({"bootstrap.servers": shared_server.bootstrap})  # the old one's view predates the restart
    earliest = fresh.list_offsets({CkPartition(topic, 0): _spec("earliest")})[CkPartition(topic, 0)].result(10)
    assert earliest.offset == 6


def _spec(which: str) -> object:
    from confluent_kafka.admin import OffsetSpec

    return OffsetSpec.earliest() if which == "earliest" else OffsetSpec.latest()


def test_delete_groups_and_their_offsets(
    shared_server: ServerProcess,
    admin: AdminClient,
    kp_admin: KafkaAdminClient,
    create_shared_topic: Callable[..., str],
) -> None:
    topic = create_shared_topic()
    produce(shared_server.bootstrap, topic, 3)
    for group in ("dg-confluent", "dg-kafka-python"):
        commit(shared_server.bootstrap, group, {(topic, 0): 2})
    admin.delete_consumer_groups(["dg-confluent"])["dg-confluent"].result(10)
    assert kp_admin.delete_groups(["dg-kafka-python"]) == {"dg-kafka-python": "OK"}
    listed = {g.group_id for g in admin.list_consumer_groups().result(10).valid}
    assert not {"dg-confluent", "dg-kafka-python"} & listed
    request = ConsumerGroupTopicPartitions("dg-confluent", [CkPartition(topic, 0)])
    (after,) = admin.list_consumer_group_offsets([request])["dg-confluent"].result(10).topic_partitions
    assert after.offset < 0  # no committed offset any more
    with RawClient(shared_server.bootstrap) as client:
        response = client.call(kio_request(42, 2, groups_names=["dg-never"]))
    assert response.results[0].error_code.value == GROUP_ID_NOT_FOUND


def test_a_group_with_members_is_not_deleted(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic()
    produce(shared_server.bootstrap, topic, 1)
    consumer = KafkaConsumer(topic, bootstrap_servers=shared_server.bootstrap, group_id="dg-busy",
                             auto_offset_reset="earliest")  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        assert consumer.assignment()
        with RawClient(shared_server.bootstrap) as client:
            deleted = client.call(kio_request(42, 2, groups_names=["dg-busy"]))
            offsets = client.call(kio_request(47, 0, group_id="dg-busy", topics=[
                {"name": topic, "partitions": [{"partition_index": 0}]}]))  # fmt: skip
        assert deleted.results[0].error_code.value == NON_EMPTY_GROUP
        assert offsets.topics[0].partitions[0].error_code.value == GROUP_SUBSCRIBED_TO_TOPIC
    finally:
        consumer.close()


def test_offset_delete_forgets_some_partitions(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(partitions=2)
    kp_admin = KafkaAdminClient(bootstrap_servers=shared_server.bootstrap)
    kp_admin.alter_group_offsets("od-group", {TopicPartition(topic, 0): OffsetAndMetadata(1, "", -1),
                                              TopicPartition(topic, 1): OffsetAndMetadata(0, "", -1)})  # fmt: skip
    kp_admin.delete_group_offsets("od-group", [TopicPartition(topic, 0)])
    left = kp_admin.list_group_offsets({"od-group": None})["od-group"]
    assert set(left) == {TopicPartition(topic, 1)}
    kp_admin.close()
    shared_server.restart()  # the deletion was journaled
    again = KafkaAdminClient(bootstrap_servers=shared_server.bootstrap)
    try:
        assert set(again.list_group_offsets({"od-group": None})["od-group"]) == {TopicPartition(topic, 1)}
    finally:
        again.close()


def test_alter_configs_replaces_the_whole_topic_config(
    shared_server: ServerProcess,
    admin: AdminClient,
    kp_admin: KafkaAdminClient,
    create_shared_topic: Callable[..., str],
) -> None:
    def configs(topic: str) -> dict[str, ConfigEntry]:
        return dict(next(iter(admin.describe_configs([ConfigResource("TOPIC", topic)]).values())).result(10))

    topic = create_shared_topic(config={"retention.ms": "1000", "cleanup.policy": "compact"})
    # kafka-python, forced onto AlterConfigs, sends the topic's other set configs along
    # (it knows the API replaces the whole config): they stay.
    kp_admin.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.bytes": "2048"})],
                           incremental=False)  # fmt: skip
    after = configs(topic)
    assert (after["segment.bytes"].value, after["retention.ms"].value) == ("2048", "1000")
    # What kafkajs alterConfigs sends: only the new config; every other goes back to its default.
    with RawClient(shared_server.bootstrap) as client:
        only = [{"name": "max.message.bytes", "value": "5000"}]
        response = client.call(kio_request(33, 2, validate_only=False, resources=[
            {"resource_type": 2, "resource_name": topic, "configs": only}]))  # fmt: skip
    assert response.responses[0].error_code.value == 0
    after = configs(topic)
    assert after["max.message.bytes"].value == "5000"
    assert after["retention.ms"].value == str(7 * 86_400_000) and after["retention.ms"].is_default
    assert after["cleanup.policy"].value == "delete" and after["segment.bytes"].is_default


def test_list_groups_v5_filters_by_state_and_type(
    shared_server: ServerProcess,
    admin: AdminClient,
    kp_admin: KafkaAdminClient,
    create_shared_topic: Callable[..., str],
) -> None:
    topic = create_shared_topic()
    commit(shared_server.bootstrap, "lg-empty", {(topic, 0): 0})
    empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(10).valid
    assert "lg-empty" in {g.group_id for g in empty}
    stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(10).valid
    assert "lg-empty" not in {g.group_id for g in stable}
    classic = admin.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(10).valid
    assert ("lg-empty", ConsumerGroupType.CLASSIC) in {(g.group_id, g.type) for g in classic}
    consumer = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(10).valid
    assert "lg-empty" not in {g.group_id for g in consumer}
    with RawClient(shared_server.bootstrap) as client:
        raw = client.call(kio_request(16, 5, states_filter=["EMPTY"], types_filter=["Classic"]))
        share = client.call(kio_request(16, 5, states_filter=[], types_filter=["share"]))
    assert ("lg-empty", "classic", "Empty") in {(g.group_id, g.group_type, g.group_state) for g in raw.groups}
    assert "lg-empty" not in {g.group_id for g in share.groups}


def test_describe_cluster_and_authorized_operations(
    shared_server: ServerProcess,
    admin: AdminClient,
    kp_admin: KafkaAdminClient,
    create_shared_topic: Callable[..., str],
) -> None:
    described = admin.describe_cluster(include_authorized_operations=True).result(10)
    assert [(n.id, n.port) for n in described.nodes] == [(0, shared_server.port)]
    assert described.controller.id == 0 and described.cluster_id
    assert {op.name for op in described.authorized_operations} >= {"DESCRIBE", "ALTER", "CREATE", "IDEMPOTENT_WRITE"}
    cluster = kp_admin.describe_cluster()
    assert cluster["cluster_id"] == described.cluster_id and cluster["controller_id"] == 0
    topic = create_shared_topic()
    (topic_description,) = admin.describe_topics(
        _topic_collection([topic]), include_authorized_operations=True
    ).values()
    assert {op.name for op in topic_description.result(10).authorized_operations} >= {"READ", "WRITE", "DELETE"}


def _topic_collection(names: list[str]) -> object:
    from confluent_kafka import TopicCollection

    return TopicCollection(names)


def test_topic_configs_kafka_validates(admin: AdminClient, create_shared_topic: Callable[..., str]) -> None:
    for codec in ("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"):
        name = create_shared_topic(config={"compression.type": codec, "min.insync.replicas": "1",
                                           "message.timestamp.type": "LogAppendTime"})  # fmt: skip
        configs = next(iter(admin.describe_configs([ConfigResource("TOPIC", name)]).values())).result(10)
        assert configs["compression.type"].value == codec
    refused = admin.create_topics([NewTopic("mir-2", 1, 1, config={"min.insync.replicas": "2"})])
    with pytest.raises(Exception, match=r"min\.insync\.replicas"):
        refused["mir-2"].result(10)
    topic = create_shared_topic()
    resource = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ConfigEntry("compression.type", "zstd", incremental_operation=AlterConfigOpType.SET),
    ])  # fmt: skip
    next(iter(admin.incremental_alter_configs([resource]).values())).result(10)
    configs = next(iter(admin.describe_configs([ConfigResource("TOPIC", topic)]).values())).result(10)
    assert configs["cleanup.policy"].value == "delete,compact" and configs["compression.type"].value == "zstd"
    subtract = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)])  # fmt: skip
    next(iter(admin.incremental_alter_configs([subtract]).values())).result(10)
    configs = next(iter(admin.describe_configs([ConfigResource("TOPIC", topic)]).values())).result(10)
    assert configs["cleanup.policy"].value == "compact"
    not_a_list = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND)])  # fmt: skip
    with pytest.raises(Exception, match="not a list config"):
        next(iter(admin.incremental_alter_configs([not_a_list]).values())).result(10)


def test_broker_and_group_configs_are_described(shared_server: ServerProcess, admin: AdminClient) -> None:
    broker = next(iter(admin.describe_configs([ConfigResource("BROKER", "0")]).values())).result(10)
    assert broker["auto.create.topics.enable"].value == "true"
    assert broker["num.partitions"].value == "1" and broker["log.retention.ms"].value == str(7 * 86_400_000)
    assert broker["compression.type"].value == "producer" and broker["min.insync.replicas"].value == "1"
    group = ConfigResource("GROUP", "gc-group", incremental_configs=[
        ConfigEntry("consumer.session.timeout.ms", "50000", incremental_operation=AlterConfigOpType.SET)])  # fmt: skip
    next(iter(admin.incremental_alter_configs([group]).values())).result(10)
    described = next(iter(admin.describe_configs([ConfigResource("GROUP", "gc-group")]).values())).result(10)
    assert described["consumer.session.timeout.ms"].value == "50000"
    assert described["consumer.heartbeat.interval.ms"].value == "5000"
    assert described["share.record.lock.duration.ms"].value == "30000"
    too_short = ConfigResource("GROUP", "gc-group", incremental_configs=[
        ConfigEntry("consumer.session.timeout.ms", "10", incremental_operation=AlterConfigOpType.SET)])  # fmt: skip
    with pytest.raises(Exception, match="45000"):
        next(iter(admin.incremental_alter_configs([too_short]).values())).result(10)
    # A consumer group's configs make no share group of it.
    with RawClient(shared_server.bootstrap) as client:
        share = client.call(kio_request(16, 5, states_filter=[], types_filter=["share"]))
    assert "gc-group" not in {g.group_id for g in share.groups}


def test_an_api_not_offered_is_answered_unsupported_and_logged(shared_server: ServerProcess) -> None:
    """ElectLeaders is not offered (one broker leads everything): a client that sends it
    anyway gets UNSUPPORTED_VERSION, which no client retries, on a connection that stays open."""
    with RawClient(shared_server.bootstrap) as client:
        body = kio_request(43, 2, election_type=0, topic_partitions=None, timeout=datetime.timedelta(seconds=1))
        response = client.call(body)
        assert response.error_code.value == 35  # UNSUPPORTED_VERSION
        assert response.replica_election_results == ()
        assert client.call(kio_request(60, 1, include_cluster_authorized_operations=False, endpoint_type=1)).brokers
    expected = "ElectLeaders (API key 43) v2 is not offered by streamlab; answered UNSUPPORTED_VERSION"
    assert expected in shared_server.log()


def test_committed_leader_epochs_come_back_and_survive_restarts(
    shared_server: ServerProcess, admin: AdminClient, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(partitions=2)
    group = "epochs"
    commit_request = ConsumerGroupTopicPartitions(
        group, [CkPartition(topic, 0, 5, leader_epoch=2), CkPartition(topic, 1, 7)]
    )
    admin.alter_consumer_group_offsets([commit_request])[group].result(10)

    def fetched() -> list[tuple[int, int, int | None]]:
        client = AdminClient({"bootstrap.servers": shared_server.bootstrap})
        request = ConsumerGroupTopicPartitions(group, [CkPartition(topic, 0), CkPartition(topic, 1)])
        answer = client.list_consumer_group_offsets([request])[group].result(10)
        return sorted((tp.partition, tp.offset, tp.leader_epoch) for tp in answer.topic_partitions)

    assert fetched() == [(0, 5, 2), (1, 7, None)]
    shared_server.restart()  # kill -9: the epochs come back from the commit journal
    assert fetched() == [(0, 5, 2), (1, 7, None)]
    shared_server.restart(kill=False)  # a clean stop checkpoints: from the checkpoint
    assert fetched() == [(0, 5, 2), (1, 7, None)]
    again = ConsumerGroupTopicPartitions(group, [CkPartition(topic, 0, 6)])
    fresh = AdminClient({"bootstrap.servers": shared_server.bootstrap})  # the old one's view predates the restarts
    fresh.alter_consumer_group_offsets([again])[group].result(10)
    assert fetched()[0] == (0, 6, None)  # a commit without an epoch replaces the old one


def test_segment_ms_set_over_the_wire_seals_the_served_topic_on_time(
    shared_server: ServerProcess, admin: AdminClient, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(config={"segment.ms": "500"})
    configs = next(iter(admin.describe_configs([ConfigResource("TOPIC", topic)]).values())).result(10)
    assert configs["segment.ms"].value == "500"
    produce(shared_server.bootstrap, topic, 10)
    segments = shared_server.data_dir / "topics" / topic / "0"
    deadline = time.monotonic() + 15  # the server's segment timer looks about once a second
    while list(segments.glob("*.log")) and time.monotonic() < deadline:  # the .log goes last
        time.sleep(0.1)
    assert len(list(segments.glob("*.parquet"))) == 1 and not list(segments.glob("*.log"))
    refused = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("segment.ms", "0", incremental_operation=AlterConfigOpType.SET)])  # fmt: skip
    with pytest.raises(Exception, match=r"segment\.ms"):
        next(iter(admin.incremental_alter_configs([refused]).values())).result(10)
    broker = next(iter(admin.describe_configs([ConfigResource("BROKER", "0")]).values())).result(10)
    assert broker["log.roll.ms"].value == "60000"
