"""KIP-848 group state survives kill -9 of `streamlab serve`: confluent-kafka members with
``group.protocol=consumer`` heartbeat on after the restart with their member ids, epochs
and partitions, the group epoch does not go back, no record is lost and the committed
offsets are kept."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from harness import ServerProcess
from kafka_wire import RawClient, kio_request
from test_groups_wire import produce

import streamlab

PARTITIONS = 4
PER_PARTITION = 50
GROUP = "restart-group"
TOPIC = "restart-topic"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", tmp_path / "server.log", args=(
        "--group-consumer-session-timeout-ms", "20000", "--group-consumer-heartbeat-interval-ms", "300",
    ))  # fmt: skip
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def describe(server: ServerProcess) -> Any:
    with RawClient(server.bootstrap) as client:
        (group,) = client.call(kio_request(69, 1, group_ids=[GROUP], include_authorized_operations=False)).groups
    assert group.error_code == 0
    return group


class Member:
    def __init__(self, server: ServerProcess, name: str) -> None:
        self.consumer = Consumer({
            "bootstrap.servers": server.bootstrap, "group.id": GROUP, "client.id": name,
            "group.protocol": "consumer", "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })  # fmt: skip
        self.consumer.subscribe([TOPIC])
        self.read: list[tuple[int, int]] = []

    def poll(self) -> None:
        msg = self.consumer.poll(0.05)
        if msg is None or msg.error() is not None:
            return
        self.read.append((msg.partition(), msg.offset()))
        # The server down or the epoch moved: the record is read again, never lost.
        with contextlib.suppress(KafkaException):
            self.consumer.commit(message=msg, asynchronous=False)

    def held(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}


def poll_until(members: list[Member], done: Any, what: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what
        for m in members:
            m.poll()


@pytest.mark.slow
def test_a_consumer_group_resumes_with_its_epochs_after_kill_9(server: ServerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=10)
    produce(server, TOPIC, [f"v{i}" for i in range(PARTITIONS * PER_PARTITION)], PARTITIONS)
    members = [Member(server, "first"), Member(server, "second")]
    try:
        everything = set(range(PARTITIONS))
        poll_until(members, lambda: all(len(m.held()) == 2 for m in members), "the members share the partitions")
        poll_until(members, lambda: sum(len(m.read) for m in members) >= 60, "some records read")
        before = describe(server)
        assert before.group_state == "Stable" and before.group_epoch == 2
        epochs = {m.member_id: m.member_epoch for m in before.members}

        server.restart(kill=True)

        after = describe(server)  # taken back from the directory, before any member heartbeats
        assert after.group_epoch == before.group_epoch
        assert {m.member_id: m.member_epoch for m in after.members} == epochs
        assert {(m.member_id, tp.partitions) for m in after.members for tp in m.assignment.topic_partitions} == {
            (m.member_id, tp.partitions) for m in before.members for tp in m.assignment.topic_partitions
        }
        poll_until(members, lambda: {p for m in members for p, _ in m.read} == everything
                   and len({r for m in members for r in m.read}) == PARTITIONS * PER_PARTITION,
                   "every record read after the restart")  # fmt: skip
        final = describe(server)
        assert final.group_epoch == before.group_epoch  # the same two members: no rebalance
        assert members[0].held() | members[1].held() == everything and not members[0].held() & members[1].held()
        committed = members[0].consumer.committed([TopicPartition(TOPIC, p) for p in everything], timeout=10)
        assert {tp.partition: tp.offset for tp in committed} == dict.fromkeys(everything, PER_PARTITION)
    finally:
        for m in members:
            m.consumer.close()
    server.kill()
    with streamlab.connect(server.data_dir) as lab:  # the directory too shows the group and its epoch
        row = lab.groups().set_index("group").loc[GROUP]
        assert row["type"] == "consumer" and row["members"] == 0
        assert row["generation"] == before.group_epoch + 2  # each member's leave bumped it
