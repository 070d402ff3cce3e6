"""KIP-848 consumer groups over the wire: confluent-kafka with ``group.protocol=consumer``
against `streamlab serve` (a short ``group.consumer.session.timeout.ms`` so fencing is
quick), members in their own processes (tests/server/group_worker.py), ownership changes
timed on the machine's monotonic clock; then the raw protocol for what clients only see as
errors (epochs, group types)."""

from __future__ import annotations

import datetime
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupType
from confluent_kafka.admin import AdminClient, NewTopic
from harness import ServerProcess
from kafka_wire import RawClient, kio_request
from test_groups_wire import Worker, produce, wait_until

import streamlab
from streamlab.kafka.mock_cluster import MockCluster

SESSION_MS = 3000
HEARTBEAT_MS = 300
_names = itertools.count()

UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42
INCONSISTENT_GROUP_PROTOCOL = 23
GROUP_ID_NOT_FOUND = 69
FENCED_MEMBER_EPOCH = 110
STALE_MEMBER_EPOCH = 113


def kip848(tmp: Path) -> ServerProcess:
    """A started server with a short consumer-group session timeout and heartbeat interval."""
    proc = ServerProcess(tmp / "data", tmp / "server.log", args=(
        "--group-consumer-session-timeout-ms", str(SESSION_MS),
        "--group-consumer-heartbeat-interval-ms", str(HEARTBEAT_MS),
    ))  # fmt: skip
    proc.start()
    return proc


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = kip848(tmp_path)
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def kip848_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = kip848(tmp_path_factory.mktemp("kip848"))
    try:
        yield proc
    finally:
        proc.kill()


def create(server: ServerProcess, partitions: int) -> str:
    name = f"kip848-{next(_names)}"
    admin = AdminClient({"bootstrap.servers": server.bootstrap})  # alive until the topic is there
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=10)
    return name


def ownership(workers: list[Worker], ends: dict[int, float]) -> dict[int, list[tuple[float, float, int]]]:
    """Per partition, the (from, to, worker) intervals in which a worker held it; a worker
    in ``ends`` (killed) held nothing after that time."""
    out: dict[int, list[tuple[float, float, int]]] = {}
    for i, w in enumerate(workers):
        since: dict[int, float] = {}
        for e in w.events("assigned"):
            held = set(e["partitions"])
            for p in held - set(since):
                since[p] = e["t"]
            for p in set(since) - held:
                out.setdefault(p, []).append((since.pop(p), e["t"], i))
        for p, start in since.items():
            out.setdefault(p, []).append((start, ends.get(i, float("inf")), i))
    return out


def assert_one_owner_at_a_time(workers: list[Worker], ends: dict[int, float] | None = None) -> None:
    for p, spans in ownership(workers, ends or {}).items():
        spans.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(spans):
            assert a == b or end <= start, f"partition {p} held by workers {a} and {b} at once"


def assert_each_record_once(workers: list[Worker], partitions: int, per_partition: int) -> None:
    """Every offset read, and by one member only: each commits after every poll, so a
    partition's next owner starts where the last one stopped. A record is read twice only
    if its first reader's commit failed (STALE_MEMBER_EPOCH: the epoch moved in between),
    which the worker reports."""
    readers: dict[tuple[int, int], list[int]] = {}
    for i, w in enumerate(workers):
        for p, o, _ in w.records():
            readers.setdefault((p, o), []).append(i)
    assert set(readers) == {(p, o) for p in range(partitions) for o in range(per_partition)}
    for (p, o), who in readers.items():
        if len(who) > 1:
            failed = {int(q) for e in workers[who[0]].events("commit_failed") for q in e["offsets"]}
            assert p in failed, f"{p}:{o} read by workers {who} though every commit of worker {who[0]} succeeded"


def record_counts(workers: list[Worker]) -> int:
    return len({(p, o) for w in workers for p, o, _ in w.records()})


def member_scenario(target: Any, topic: str, group: str, while_running: Callable[[], None] = lambda: None) -> None:
    """Members of ``group`` on ``topic`` (4 partitions) of ``target`` (anything with a
    ``bootstrap``) join, leave and die; partitions move one owner at a time, every record
    is read, by one member."""
    client = "confluent-consumer-protocol"
    produce(target, topic, [f"a{i}" for i in range(200)], 4)
    first = Worker(client, target, group, topic, "uniform")
    workers = [first]
    try:
        wait_until(lambda: first.assignment() == {0, 1, 2, 3}, 20, "one member with every partition")
        wait_until(lambda: record_counts(workers) == 200, 20, "the first records")
        second = Worker(client, target, group, topic, "uniform")
        workers.append(second)
        wait_until(lambda: len(first.assignment() or ()) == 2 == len(second.assignment() or ()), 20,
                   "the two members to share the partitions")  # fmt: skip
        produce(target, topic, [f"b{i}" for i in range(200)], 4)
        wait_until(lambda: record_counts(workers) == 400, 20, "the second records")
        assert_one_owner_at_a_time(workers)
        assert_each_record_once(workers, 4, 100)

        first.stop()  # leaves the group (epoch -1): its partitions go to the second at once
        wait_until(lambda: second.assignment() == {0, 1, 2, 3}, 10, "the second member to take everything")
        third = Worker(client, target, group, topic, "uniform")
        workers.append(third)
        wait_until(lambda: len(third.assignment() or ()) == 2, 20, "a third member to get half")
        produce(target, topic, [f"c{i}" for i in range(200)], 4)
        wait_until(lambda: record_counts(workers) == 600, 20, "the third records")
        wait_until(lambda: all(third.committed().get(p) == 150 for p in third.assignment() or ()), 10,
                   "the third member's commits")  # fmt: skip
        third.kill()  # kill -9: nobody tells the group; the session timeout does
        killed = time.monotonic()
        produce(target, topic, [f"d{i}" for i in range(200)], 4)
        took = wait_until(lambda: second.assignment() == {0, 1, 2, 3}, 20, "the dead member to be fenced")
        assert took >= SESSION_MS / 1000 - 1.0
        wait_until(lambda: record_counts(workers) == 800, 20, "the fourth records")
        assert_one_owner_at_a_time(workers, {2: killed})
        assert_each_record_once(workers, 4, 200)
        while_running()
    finally:
        for w in workers:
            w.stop()


@pytest.mark.slow
def test_partitions_move_one_owner_at_a_time_and_come_back_when_members_leave_or_die(
    server: ServerProcess,
) -> None:
    topic, group = create(server, 4), "kip848-workers"

    def admin_view() -> None:
        admin = AdminClient({"bootstrap.servers": server.bootstrap})
        described = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert described.type == ConsumerGroupType.CONSUMER
        assert str(described.state).endswith("STABLE") and [len(m.assignment.topic_partitions) for m in
                                                             described.members] == [4]  # fmt: skip
        listed = admin.list_consumer_groups().result(timeout=10).valid
        assert any(g.group_id == group and g.type == ConsumerGroupType.CONSUMER for g in listed)

    member_scenario(server, topic, group, admin_view)
    server.stop()
    with streamlab.connect(server.data_dir) as lab:
        history = lab.rebalances(group)
    reasons = " ".join(history["reason"])
    assert "joined" in reasons and "left the group" in reasons and "timed out (session timeout)" in reasons
    assert set(history["change"]) == {"assigned", "revoked"}


@pytest.mark.slow
def test_the_same_members_against_librdkafkas_mock_cluster() -> None:
    """The oracle: librdkafka's own KIP-848 coordinator, with the same settings."""
    with MockCluster(brokers=1) as mock:
        mock.consumer_group_settings(session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS)
        mock.create_topic("kip848-mock", partitions=4)
        member_scenario(mock, "kip848-mock", "kip848-workers")


def heartbeat(client: RawClient, group: str, member: str, epoch: int, **fields: Any) -> Any:
    return client.call(kio_request(68, 1, group_id=group, member_id=member, member_epoch=epoch, **fields))


def classic_join(client: RawClient, group: str, member_id: str) -> Any:
    ten_s = datetime.timedelta(seconds=10)
    return client.call(kio_request(11, 9, group_id=group, session_timeout=ten_s, rebalance_timeout=ten_s,
                                   member_id=member_id, protocol_type="consumer",
                                   protocols=[{"name": "range", "metadata": b""}]))  # fmt: skip


def test_epochs_and_group_types_over_the_wire(kip848_server: ServerProcess) -> None:
    topic, group = create(kip848_server, 2), "kip848-raw"
    with RawClient(kip848_server.bootstrap) as client:
        joined = heartbeat(client, group, "m1", 0, rebalance_timeout=datetime.timedelta(seconds=30),
                           subscribed_topic_names=[topic], server_assignor="range", topic_partitions=[])  # fmt: skip
        assert (joined.error_code, joined.member_epoch) == (0, 1)
        assert joined.heartbeat_interval == datetime.timedelta(milliseconds=HEARTBEAT_MS)
        (owned,) = joined.assignment.topic_partitions
        assert sorted(owned.partitions) == [0, 1]
        same = heartbeat(client, group, "m1", 1, topic_partitions=[{"topic_id": owned.topic_id, "partitions": [0, 1]}])
        assert (same.error_code, same.member_epoch, same.assignment) == (0, 1, None)
        assert heartbeat(client, group, "m1", 7, topic_partitions=None).error_code == FENCED_MEMBER_EPOCH
        assert heartbeat(client, group, "nobody", 1, topic_partitions=None).error_code == UNKNOWN_MEMBER_ID

        def commit(epoch: int) -> int:
            partition = {"partition_index": 0, "committed_offset": 5, "committed_metadata": ""}
            topics = [{"name": topic, "partitions": [partition]}]
            response = client.call(
                kio_request(8, 9, group_id=group, generation_id_or_member_epoch=epoch, member_id="m1", topics=topics)
            )
            return int(response.topics[0].partitions[0].error_code)

        def fetch(epoch: int) -> Any:
            response = client.call(kio_request(9, 9, require_stable=False, groups=[{
                "group_id": group, "member_id": "m1", "member_epoch": epoch,
                "topics": [{"name": topic, "partition_indexes": [0]}]}]))  # fmt: skip
            return response.groups[0]

        assert commit(0) == STALE_MEMBER_EPOCH
        assert commit(1) == 0
        assert fetch(0).error_code == STALE_MEMBER_EPOCH
        assert fetch(1).topics[0].partitions[0].committed_offset == 5

        classic = classic_join(client, group, "")
        assert classic.error_code == INCONSISTENT_GROUP_PROTOCOL

        described = client.call(
            kio_request(69, 1, group_ids=[group, "kip848-none"], include_authorized_operations=True)
        )
        mine, missing = described.groups
        assert (mine.error_code, mine.group_state, mine.group_epoch, mine.assignment_epoch) == (0, "Stable", 1, 1)
        assert (mine.assignor_name, [m.member_epoch for m in mine.members]) == ("range", [1])
        assert [tp.topic_name for tp in mine.members[0].assignment.topic_partitions] == [topic]
        assert missing.error_code == GROUP_ID_NOT_FOUND
        assert mine.authorized_operations & (1 << 8) and missing.authorized_operations == -(2**31)  # DESCRIBE
        (classic_view,) = client.call(kio_request(15, 5, groups=[group], include_authorized_operations=False)).groups
        assert (classic_view.protocol_type, classic_view.group_state, classic_view.protocol_data) == (
            "consumer", "Stable", "range")  # fmt: skip
        listed = client.call(kio_request(16, 5, states_filter=[], types_filter=["consumer"])).groups
        assert [(g.group_id, g.group_type) for g in listed if g.group_id == group] == [(group, "consumer")]
        with streamlab.connect(f"kafka://{kip848_server.bootstrap}") as lab:  # kafka:// tells the types apart
            assert lab.groups().set_index("group").loc[group, "type"] == "consumer"

        left = heartbeat(client, group, "m1", -1, topic_partitions=None)
        assert (left.error_code, left.member_epoch) == (0, -1)
        # an empty consumer group's id can become classic (its offsets stay the id's)
        again = classic_join(client, group, "")
        assert again.error_code == 79  # MEMBER_ID_REQUIRED: the classic join goes on
        member = again.member_id
        joined_classic = classic_join(client, group, member)
        assert joined_classic.error_code == 0
        refused = heartbeat(client, group, "m2", 0, rebalance_timeout=datetime.timedelta(seconds=30),
                            subscribed_topic_names=[topic], topic_partitions=[])  # fmt: skip
        assert refused.error_code == GROUP_ID_NOT_FOUND, (
            "a classic group with members takes no consumer-protocol member"
        )


def test_odd_heartbeats_get_error_codes_and_the_connection_stays(kip848_server: ServerProcess) -> None:
    topic = create(kip848_server, 1)
    minute = datetime.timedelta(minutes=1)
    stranger = {"topic_id": uuid.UUID(int=0x1234), "partitions": [0]}
    cases: list[tuple[dict[str, Any], int]] = [
        ({"group_id": "", "member_id": "m", "member_epoch": 0}, INVALID_REQUEST),
        ({"group_id": "g-odd", "member_id": "", "member_epoch": 0}, INVALID_REQUEST),
        ({"group_id": "g-odd", "member_id": "m", "member_epoch": 0, "topic_partitions": []}, INVALID_REQUEST),
        ({"group_id": "g-odd", "member_id": "m", "member_epoch": 0, "rebalance_timeout": minute,
          "subscribed_topic_names": [topic], "topic_partitions": [stranger]}, 0),  # an unknown topic id owns nothing
        ({"group_id": "g-odd", "member_id": "n", "member_epoch": 0, "rebalance_timeout": minute,
          "subscribed_topic_names": [topic], "topic_partitions": [], "server_assignor": "sticky"}, 112),
        ({"group_id": "g-odd", "member_id": "n", "member_epoch": 0, "rebalance_timeout": minute,
          "subscribed_topic_regex": "(", "topic_partitions": []}, 128),
        ({"group_id": "g-odd", "member_id": "m", "member_epoch": -3}, INVALID_REQUEST),
        ({"group_id": "g-odd", "member_id": "m", "member_epoch": -2}, INVALID_REQUEST),  # -2 needs an instance id
        ({"group_id": "g-odd", "member_id": "m", "member_epoch": 2**31 - 1}, FENCED_MEMBER_EPOCH),
        ({"group_id": "g-gone", "member_id": "m", "member_epoch": 3}, UNKNOWN_MEMBER_ID),
        ({"group_id": "g-gone", "member_id": "m", "member_epoch": -1}, 0),
    ]  # fmt: skip
    with RawClient(kip848_server.bootstrap) as client:
        for fields, code in cases:
            body = kio_request(68, 1, **{"topic_partitions": None, **fields})
            assert client.call(body).error_code == code, fields
        v0 = client.call(kio_request(68, 0, group_id="g-v0", member_id="", member_epoch=0, rebalance_timeout=minute,
                                     subscribed_topic_names=[topic], topic_partitions=[]))  # fmt: skip
        assert v0.error_code == 0 and v0.member_id, "v0: the coordinator names a member that has no id"
        assert client.call(kio_request(69, 0, group_ids=[], include_authorized_operations=True)).groups == ()


def test_a_regex_subscription_takes_new_matching_topics(kip848_server: ServerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": kip848_server.bootstrap})
    admin.create_topics([NewTopic("rx-first", 2, 1), NewTopic("rx-other", 1, 1)])["rx-first"].result(timeout=10)
    consumer = Consumer({"bootstrap.servers": kip848_server.bootstrap, "group.id": "kip848-regex",
                         "group.protocol": "consumer", "group.instance.id": "regex-1"})  # fmt: skip
    try:
        consumer.subscribe(["^rx-f.*", "^rx-s.*"])
        held = lambda: sorted((tp.topic, tp.partition) for tp in consumer.assignment())  # noqa: E731
        poll_until(consumer, lambda: held() == [("rx-first", 0), ("rx-first", 1)], "the matching topic")
        admin.create_topics([NewTopic("rx-second", 1, 1)])["rx-second"].result(timeout=10)
        poll_until(consumer, lambda: ("rx-second", 0) in held(), "a new matching topic")
        (member,) = admin.describe_consumer_groups(["kip848-regex"])["kip848-regex"].result(timeout=10).members
        assert member.group_instance_id == "regex-1"
    finally:
        consumer.close()


def poll_until(consumer: Consumer, condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        consumer.poll(0.1)


@pytest.mark.slow
def test_members_rejoin_after_the_server_is_killed_and_resume_from_their_commits(server: ServerProcess) -> None:
    topic, group = create(server, 2), "kip848-restart"
    produce(server, topic, [f"a{i}" for i in range(100)], 2)
    worker = Worker("confluent-consumer-protocol", server, group, topic, "range")
    try:
        wait_until(lambda: record_counts([worker]) == 100, 20, "the first records")
        wait_until(lambda: worker.committed() == {0: 50, 1: 50}, 10, "the commits")
        server.restart()  # kill -9: the group and its committed offsets are taken back
        produce(server, topic, [f"b{i}" for i in range(100)], 2)
        wait_until(lambda: record_counts([worker]) == 200, 30, "the records after the restart")
        assert_each_record_once([worker], 2, 100)
        assert len(worker.records()) == 200, "resumed at the committed offsets: nothing read twice"
    finally:
        worker.stop()
