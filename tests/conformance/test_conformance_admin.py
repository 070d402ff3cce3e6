"""Group and topic administration on the backends that offer it (librdkafka's mock cluster
has no ListGroups, DescribeGroups or CreatePartitions: test_mock_cluster.py checks it says so)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import streamlab
from streamlab import TopicPartition
from streamlab.errors import GroupNotEmptyError

with_admin = pytest.mark.parametrize("backend", ["embedded", "serve"], indirect=True)


@with_admin
def test_groups_and_describe_group(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(partitions=4), make_group()
    consumers = [lab.consumer([topic], group=group, assignor="range", client_id=f"member-{i}") for i in range(2)]
    try:
        deadline = time.monotonic() + 20
        while sorted(len(c.assignment()) for c in consumers) != [2, 2]:
            assert time.monotonic() < deadline, "the group did not settle"
            for c in consumers:
                c.poll(timeout=0.05)
        row = lab.groups().set_index("group").loc[group]
        assert (row["state"], row["members"], row["assignor"]) == ("Stable", 2, "range")
        described = lab.describe_group(group)
        assert list(described.columns) == ["member", "client_id", "host", "topic", "partition", "member_epoch"]
        assert described["member_epoch"].isna().all()  # a classic group has generations, not member epochs
        assert sorted(described["partition"]) == [0, 1, 2, 3]
        assert described["member"].nunique() == 2
        assert set(described["client_id"]) == {"member-0", "member-1"}
        assert lab.describe_group(f"{group}-never-used").empty
    finally:
        for c in consumers:
            c.close()


@with_admin
def test_reset_offsets_applies_only_to_an_empty_group(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(), make_group()
    with lab.producer() as p:
        for i in range(10):
            p.send(topic, value=i, timestamp=1_700_000_000_000 + i * 1000)
    c = lab.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False)
    assert len(c.poll(timeout=10, max_records=4)) == 4
    c.commit()
    with pytest.raises(GroupNotEmptyError):
        lab.reset_offsets(group, to="latest", dry_run=False)
    c.close()
    applied = lab.reset_offsets(group, to="latest", dry_run=False)
    assert applied[["current", "new", "skipped"]].values.tolist() == [[4, 10, 6]]
    assert lab.lag(group)["lag"].tolist() == [0]
    at = lab.reset_offsets(group, to="2023-11-14T22:13:27Z", dry_run=False)
    assert at["new"].tolist() == [7]
    with lab.consumer([topic], group=group) as again:
        assert [r.value for r in again.poll(timeout=10)] == [7, 8, 9]


@with_admin
def test_new_partitions_are_picked_up_by_a_subscription(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        assert c.assignment() == {TopicPartition(topic, 0)}
        lab.create_partitions(topic, 3)
        assert lab.offsets(topic)["partition"].tolist() == [0, 1, 2]
        with lab.producer() as p:
            p.send(topic, value="new", partition=2).result(10)
        deadline = time.monotonic() + 20
        got: list[streamlab.Record] = []
        while not got and time.monotonic() < deadline:
            got = c.poll(timeout=0.5)
        assert [r.partition for r in got] == [2]
        assert c.assignment() == {TopicPartition(topic, p) for p in range(3)}
