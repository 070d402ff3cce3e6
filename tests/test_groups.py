"""Consumer groups in one process: disjoint ownership, rebalances, liveness, history, lag."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import streamlab
from streamlab import TopicPartition
from streamlab.client.consumer import Consumer
from streamlab.errors import GroupNotEmptyError, IllegalGenerationError, InconsistentProtocolError


def _settle(
    consumers: list[Consumer], *, timeout: float = 15, sink: list[object] | None = None
) -> dict[str, set[TopicPartition]]:
    """Poll every consumer until the group is stable and every member holds its assignment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            got = c.poll(timeout=0.01, max_records=1)
            if sink is not None:
                sink.extend(r.value for r in got)
        group = consumers[0]._membership.group  # type: ignore[union-attr]
        owned = {c.member_id: c.assignment() for c in consumers}
        if (
            group.state == "Stable"
            and all(
                c.assignment() == set(group.members[c.member_id].assignment)
                for c in consumers
                if c.member_id in group.members
            )
            and all(c.member_id in group.members for c in consumers)
        ):
            return {k: v for k, v in owned.items() if k}
    raise AssertionError(f"group did not settle: {group.state}")


def _make(lab: streamlab.Lab, topic: str, n: int, **config: object) -> list[Consumer]:
    return [
        lab.consumer([topic], group="analytics", auto_offset_reset="earliest", client_id=f"c{i}", **config)
        for i in range(n)
    ]


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "sticky", "cooperative-sticky"])
def test_three_members_share_six_partitions(lab: streamlab.Lab, make_topic: Callable[..., str], assignor: str) -> None:
    topic = make_topic(partitions=6)
    consumers = _make(lab, topic, 3, assignor=assignor)
    owned = _settle(consumers)
    assert sorted(len(v) for v in owned.values()) == [2, 2, 2]
    every = [tp for v in owned.values() for tp in v]
    assert len(every) == len(set(every)) == 6
    assert lab.groups().set_index("group").loc["analytics", "assignor"] == assignor
    described = lab.describe_group("analytics")
    assert len(described) == 6 and described["member"].nunique() == 3
    for c in consumers:
        c.close()


def test_close_moves_partitions_and_no_record_is_skipped(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=6)
    with lab.producer() as p:
        for i in range(600):
            p.send(topic, value=i, key=f"k{i}")
    consumers = _make(lab, topic, 3, enable_auto_commit=False)
    seen: list[object] = []
    _settle(consumers, sink=seen)
    for c in consumers:
        seen.extend(r.value for r in c.poll(timeout=1, max_records=50))
        c.commit()
    generation = lab.groups().loc[0, "generation"]
    consumers[0].close()
    owned = _settle(consumers[1:], sink=seen)
    assert sorted(len(v) for v in owned.values()) == [3, 3]
    assert lab.groups().loc[0, "generation"] > generation
    deadline = time.monotonic() + 20
    while len(set(seen)) < 600 and time.monotonic() < deadline:
        for c in consumers[1:]:
            seen.extend(r.value for r in c.poll(timeout=0.05, max_records=100))
    assert set(seen) == set(range(600))  # at least once from the last commit, nothing skipped
    history = lab.rebalances("analytics")
    assert set(history["change"]) >= {"assigned", "revoked"}
    assert history["reason"].str.contains("left the group").any()
    for c in consumers[1:]:
        c.close()


def test_a_member_that_stops_heartbeating_is_expelled(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=4)
    consumers = _make(lab, topic, 2, session_timeout_ms=600)
    _settle(consumers)
    consumers[1]._die()
    group = consumers[0]._membership.group  # type: ignore[union-attr]
    deadline = time.monotonic() + 15
    while len(group.members) > 1 and time.monotonic() < deadline:
        consumers[0].poll(timeout=0.05)
    owned = _settle(consumers[:1], timeout=15)
    assert len(next(iter(owned.values()))) == 4
    assert lab.rebalances("analytics")["reason"].str.contains("session.timeout.ms").any()
    consumers[0].close()


def test_new_partitions_trigger_a_rebalance(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    consumers = _make(lab, topic, 2)
    _settle(consumers)
    lab.create_partitions(topic, 6)
    time.sleep(0.2)
    owned = _settle(consumers)
    assert sorted(len(v) for v in owned.values()) == [3, 3]
    assert lab.rebalances("analytics")["reason"].str.contains("partitions added").any()
    for c in consumers:
        c.close()


def test_cooperative_keeps_unmoved_partitions(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=6)
    revoked: list[TopicPartition] = []
    first = lab.consumer([topic], group="analytics", assignor="cooperative-sticky", on_revoke=revoked.extend)
    _settle([first])
    second = lab.consumer([topic], group="analytics", assignor="cooperative-sticky")
    owned = _settle([first, second])
    assert sorted(len(v) for v in owned.values()) == [3, 3]
    assert len(revoked) == 3  # only the partitions that moved were revoked
    first.close()
    second.close()


def test_commit_from_an_old_generation_is_rejected(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    (c1,) = _make(lab, topic, 1, enable_auto_commit=False)
    _settle([c1])
    c2 = lab.consumer([topic], group="analytics", client_id="late")  # starts a rebalance
    with pytest.raises(Exception) as info:
        c1._membership.generation -= 1  # type: ignore[union-attr]
        c1.commit({TopicPartition(topic, 0): 1})
    assert isinstance(info.value, IllegalGenerationError) or "rebalancing" in str(info.value)
    c1.close()
    c2.close()


def test_members_must_share_an_assignor(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    c1 = lab.consumer([topic], group="analytics", assignor="range")
    _settle([c1])
    with pytest.raises(InconsistentProtocolError):
        lab.consumer([topic], group="analytics", assignor="roundrobin")
    c1.close()


def test_lag_and_reset_offsets(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    with lab.producer() as p:
        for i in range(10):
            p.send(topic, value=i, timestamp=1_700_000_000_000 + i * 1000)
    c = lab.consumer([topic], group="g", auto_offset_reset="earliest", enable_auto_commit=False)
    c.poll(timeout=5, max_records=4)
    c.commit()
    lag = lab.lag("g")
    assert lag[["committed", "end_offset", "lag"]].iloc[0].tolist() == [4, 10, 6]
    assert lag["time_lag"].iloc[0].total_seconds() == 5
    preview = lab.reset_offsets("g", to="earliest")
    assert preview[["current", "new", "replayed", "skipped"]].iloc[0].tolist() == [4, 0, 4, 0]
    with pytest.raises(GroupNotEmptyError):
        lab.reset_offsets("g", to="latest", dry_run=False)
    c.close()
    applied = lab.reset_offsets("g", to="latest", dry_run=False)
    assert applied[["new", "skipped"]].iloc[0].tolist() == [10, 6]
    assert lab.lag("g")["lag"].tolist() == [0]
    at = lab.reset_offsets("g", to="2023-11-14T22:13:27Z", dry_run=False)
    assert at["new"].tolist() == [7]


def test_rebalance_history_survives_reopening(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t", partitions=2)
        c = lab.consumer(["t"], group="hist")
        _settle([c])
        c.close()
        before = lab.rebalances("hist")
    with streamlab.connect(tmp_path) as lab:
        after = lab.rebalances("hist")
    assert len(before) >= 4 and before.equals(after)
    assert list(after.columns) == ["generation", "time", "reason", "member", "topic", "partition", "change"]


def test_pattern_subscription_follows_new_topics_and_rebalances(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    lab.create_topic("orders-eu", partitions=2)
    lab.create_topic("payments", partitions=1)
    consumers = [
        lab.consumer(group="analytics", pattern=r"orders-.*", auto_offset_reset="earliest", client_id=f"p{i}")
        for i in range(2)
    ]
    owned = _settle(consumers)
    assert {tp.topic for v in owned.values() for tp in v} == {"orders-eu"}
    assert consumers[0].subscription() == ["orders-eu"]
    lab.create_topic("orders-us", partitions=2)
    with lab.producer() as p:
        p.send("orders-us", value="new topic", partition=1).result(10)
    deadline = time.monotonic() + 15
    seen: list[object] = []
    while "new topic" not in seen and time.monotonic() < deadline:
        for c in consumers:
            seen.extend(r.value for r in c.poll(timeout=0.05))
    assert "new topic" in seen
    owned = _settle(consumers)
    assert sorted(len(v) for v in owned.values()) == [2, 2]
    assert {tp.topic for v in owned.values() for tp in v} == {"orders-eu", "orders-us"}
    assert lab.rebalances("analytics")["reason"].str.contains("subscription").any()
    with pytest.raises(streamlab.errors.ConfigError, match="regular expression"):
        lab.consumer(group="x", pattern="orders-(")
    for c in consumers:
        c.close()


def test_generations_continue_after_the_broker_reopens(tmp_path: Path) -> None:
    def join_and_leave(lab: streamlab.Lab) -> int:
        consumer = lab.consumer("t", group="g")
        deadline = time.monotonic() + 10
        while not consumer.assignment():
            consumer.poll(0.05)
            assert time.monotonic() < deadline
        generation = consumer.generation
        consumer.close()
        return generation

    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        first = join_and_leave(lab)
    with streamlab.connect(tmp_path) as lab:
        assert lab.groups().set_index("group").loc["g", "generation"] >= first  # not 0
        second = join_and_leave(lab)
        assert second > first
        history = lab.rebalances("g")
        assigned = history[history["change"] == "assigned"]
        assert assigned["generation"].tolist() == sorted(set(assigned["generation"]))  # no generation twice
