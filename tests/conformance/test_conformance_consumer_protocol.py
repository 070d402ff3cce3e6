"""``group_protocol="consumer"`` (KIP-848): the broker assigns, members reconcile one
partition move at a time; the same on the embedded broker, `streamlab serve` and
librdkafka's mock cluster (which speaks the consumer protocol too)."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlab
from streamlab import Consumer, TopicPartition


def _poll_until(consumers: list[Consumer], done: Callable[[], bool], *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, [sorted(c.assignment()) for c in consumers]
        for c in consumers:
            c.poll(timeout=0.05, max_records=100)


def test_consumer_protocol_members_share_partitions_and_revoke_before_they_move(
    lab: streamlab.Lab, backend: str, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(partitions=4), make_group()
    with lab.producer() as p:
        for i in range(100):
            p.send(topic, value=i, partition=i % 4)
    everything = {TopicPartition(topic, p) for p in range(4)}
    revoked: list[TopicPartition] = []
    first = lab.consumer(topic, group=group, group_protocol="consumer", assignor="uniform",
                         auto_offset_reset="earliest", enable_auto_commit=False, on_revoke=revoked.extend)  # fmt: skip
    second = None
    try:
        read: list[streamlab.Record] = []
        deadline = time.monotonic() + 30
        while len(read) < 100 and time.monotonic() < deadline:
            read.extend(first.poll(timeout=0.1))
        assert sorted(r.value for r in read) == list(range(100)) and first.assignment() == everything
        first.commit()
        second = lab.consumer(topic, group=group, group_protocol="consumer", assignor="uniform",
                              auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
        both = [first, second]

        def shared() -> bool:
            a, b = first.assignment(), second.assignment()
            return len(a) == len(b) == 2 and a | b == everything

        _poll_until(both, shared)
        assert sorted(revoked) == sorted(second.assignment())  # only what moved was revoked
        assert not first.assignment() & second.assignment()
        assert [r for r in second.poll(timeout=0.3)] == []  # it starts at the committed offsets
        if backend == "kafka-mock":
            return  # the mock cluster answers no ListGroups
        groups = lab.groups().set_index("group")
        assert groups.loc[group, "type"] == "consumer"
        assert groups.loc[group, "members"] == 2
        if backend == "embedded":  # kafka:// clients are not told the group epoch
            assert groups.loc[group, "generation"] >= 2
        members = lab.describe_group(group)
        assert {
            TopicPartition(t, int(p)) for t, p in zip(members["topic"], members["partition"], strict=True)
        } == everything
        assert members.groupby("member").size().tolist() == [2, 2]
        if backend == "embedded":  # each member reconciled to the group's epoch
            assert (members["member_epoch"] == groups.loc[group, "generation"]).all()
        else:  # confluent-kafka's admin client is not told member epochs
            assert members["member_epoch"].isna().all()
    finally:
        first.close()
        if second is not None:
            second.close()
