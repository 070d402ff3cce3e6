"""KIP-848 consumer groups without a server: the server-side assignors, epochs and the
incremental reconciliation, driven with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamlab.broker import Broker, group_configs
from streamlab.broker.consumer_groups import check_not_consumer_protocol, consumer_groups
from streamlab.broker.group_admin import describe_group, list_all_groups, rebalances
from streamlab.broker.topics import create_topic
from streamlab.errors import (
    ConfigError,
    FencedMemberEpochError,
    InconsistentProtocolError,
    InvalidHeartbeatError,
    InvalidRegularExpressionError,
    StaleMemberEpochError,
    UnknownMemberError,
    UnreleasedInstanceIdError,
    UnsupportedAssignorError,
)
from streamlab.groups.consumer_group import ConsumerGroup
from streamlab.groups.consumer_member import (
    ConsumerGroupConfig,
    ConsumerGroupState,
    HeartbeatRequest,
    HeartbeatResult,
    MemberState,
)
from streamlab.groups.server_assignors import range_, uniform
from streamlab.groups.state import GroupEvent
from streamlab.model.types import TopicPartition


def tps(topic: str, *parts: int) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(topic, p) for p in parts)


# assignors -----------------------------------------------------------------------------------
def test_uniform_balances_and_keeps_what_it_can() -> None:
    subs = {m: frozenset({"t"}) for m in ("a", "b", "c")}
    first = uniform({"a": frozenset({"t"})}, {"t": 7}, {})
    assert first == {"a": tps("t", *range(7))}
    second = uniform(subs, {"t": 7}, first)
    assert sorted(len(v) for v in second.values()) == [2, 2, 3]
    assert set().union(*second.values()) == set(tps("t", *range(7)))
    assert len(second["a"] & first["a"]) == 3, "a keeps its share, moves only the rest"
    again = uniform(subs, {"t": 7}, second)
    assert again == second, "the same input keeps the same target"
    gone = uniform({m: subs[m] for m in ("a", "b")}, {"t": 7}, second)
    assert gone["a"] >= second["a"] and gone["b"] >= second["b"], "the survivors keep theirs and take c's"


def test_uniform_with_different_subscriptions_gives_each_topic_to_its_subscribers() -> None:
    subs = {"a": frozenset({"x"}), "b": frozenset({"x", "y"}), "c": frozenset({"y"})}
    target = uniform(subs, {"x": 4, "y": 2}, {})
    assert all(tp.topic in subs[m] for m, got in target.items() for tp in got)
    assert sum(map(len, target.values())) == 6
    assert max(map(len, target.values())) - min(map(len, target.values())) <= 1


def test_range_gives_contiguous_ranges_per_topic() -> None:
    subs = {"b": frozenset({"x", "y"}), "a": frozenset({"x", "y"})}
    target = range_(subs, {"x": 3, "y": 3}, {})
    assert target == {"a": tps("x", 0, 1) | tps("y", 0, 1), "b": tps("x", 2) | tps("y", 2)}


# the group ------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[GroupEvent]:
    return []


@pytest.fixture
def topics() -> dict[str, int]:
    return {"t": 4}


@pytest.fixture
def group(clock: Clock, events: list[GroupEvent], topics: dict[str, int]) -> Iterator[ConsumerGroup]:
    yield ConsumerGroup(
        "g",
        lambda names: {t: topics[t] for t in names if t in topics},
        lambda: sorted(topics),
        lambda _group, evs: events.extend(evs),
        ConsumerGroupConfig(session_timeout_ms=10_000, heartbeat_interval_ms=1_000),
        clock,
    )


def join(group: ConsumerGroup, member: str, topics: tuple[str, ...] = ("t",), **kw: object) -> HeartbeatResult:
    return group.heartbeat(HeartbeatRequest(member_id=member, epoch=0, rebalance_timeout_ms=5_000, topics=topics,
                                            owned=frozenset(), **kw))  # type: ignore[arg-type]  # fmt: skip


def beat(group: ConsumerGroup, member: str, epoch: int, owned: frozenset[TopicPartition] | None) -> HeartbeatResult:
    return group.heartbeat(HeartbeatRequest(member_id=member, epoch=epoch, owned=owned))


def test_a_second_member_gets_partitions_only_after_the_first_revoked_them(
    group: ConsumerGroup, events: list[GroupEvent]
) -> None:
    a = join(group, "a")
    assert (a.epoch, a.assignment) == (1, tps("t", 0, 1, 2, 3))
    assert group.state == ConsumerGroupState.STABLE
    b = join(group, "b")
    assert b.epoch == 2 and b.assignment == frozenset(), "b waits: a still owns what b is to get"
    assert group.describe().members[1].state == MemberState.UNRELEASED_PARTITIONS
    a = beat(group, "a", 1, tps("t", 0, 1, 2, 3))
    assert a.epoch == 1, "a is asked to revoke and stays at its epoch until it has"
    assert a.assignment is not None and len(a.assignment) == 2
    kept = a.assignment
    b = beat(group, "b", 2, frozenset())
    assert b.assignment is None, "still nothing for b: a has not confirmed"
    a = beat(group, "a", 1, kept)  # revoked
    assert (a.epoch, a.assignment) == (2, None)
    b = beat(group, "b", 2, frozenset())
    assert b.assignment == tps("t", 0, 1, 2, 3) - kept
    assert group.state == ConsumerGroupState.STABLE
    # ownership history: a's revocations are recorded before b's assignments
    moved = [(e.member_id, e.change) for e in events if TopicPartition(e.topic, e.partition) not in kept]
    assert moved[:2] == [("a", "assigned")] * 2 and moved[-4:] == [("a", "revoked")] * 2 + [("b", "assigned")] * 2


def test_never_two_owners(group: ConsumerGroup) -> None:
    owned: dict[str, frozenset[TopicPartition]] = {}
    epochs: dict[str, int] = {}
    for member in ("a", "b", "c"):
        r = join(group, member)
        epochs[member], owned[member] = r.epoch, r.assignment or frozenset()
        for _ in range(4):  # everyone heartbeats, applying what it gets
            for m in list(owned):
                r = beat(group, m, epochs[m], owned[m])
                epochs[m] = r.epoch
                if r.assignment is not None:
                    owned[m] = r.assignment
                all_owned = [tp for got in owned.values() for tp in got]
                assert len(all_owned) == len(set(all_owned)), f"a partition with two owners: {owned}"
    assert sorted(len(v) for v in owned.values()) == [1, 1, 2]
    assert group.state == ConsumerGroupState.STABLE


def test_epochs_are_checked(group: ConsumerGroup) -> None:
    join(group, "a")
    with pytest.raises(FencedMemberEpochError):
        beat(group, "a", 5, None)
    join(group, "b")
    beat(group, "a", 1, tps("t", 0, 1, 2, 3))
    a = beat(group, "a", 1, tps("t", 0, 1))
    assert a.epoch == 2
    # the response was lost: the previous epoch with owned partitions it still has is accepted
    assert beat(group, "a", 1, tps("t", 0, 1)).epoch == 2
    with pytest.raises(FencedMemberEpochError):
        beat(group, "a", 1, tps("t", 0, 1, 2))
    with pytest.raises(UnknownMemberError):
        beat(group, "nobody", 1, None)
    group.check_member_epoch("a", 2)
    with pytest.raises(StaleMemberEpochError):
        group.check_member_epoch("a", 1)
    with pytest.raises(UnknownMemberError):
        group.check_member_epoch("", -1)  # admin commits only to an empty group


def test_session_timeout_hands_partitions_over(group: ConsumerGroup, clock: Clock) -> None:
    join(group, "a")
    join(group, "b")
    a = beat(group, "a", 1, tps("t", 0, 1, 2, 3))
    assert a.assignment is not None
    beat(group, "a", 1, a.assignment)
    clock.now += 6
    beat(group, "b", 2, frozenset())
    clock.now += 6  # a has been silent 12 s > 10 s
    b = beat(group, "b", 2, frozenset())
    assert b.epoch == 3 and b.assignment == tps("t", 0, 1, 2, 3)
    assert [m.member_id for m in group.describe().members] == ["b"]


def test_a_member_that_does_not_revoke_in_time_is_fenced(group: ConsumerGroup, clock: Clock) -> None:
    join(group, "a")
    join(group, "b")
    beat(group, "a", 1, tps("t", 0, 1, 2, 3))  # asked to revoke two
    for _ in range(2):
        clock.now += 2
        beat(group, "a", 1, tps("t", 0, 1, 2, 3))  # heartbeats, but never revokes
        beat(group, "b", 2, frozenset())
    clock.now += 2  # past its 5 s rebalance timeout
    with pytest.raises(UnknownMemberError):
        beat(group, "a", 1, tps("t", 0, 1, 2, 3))
    b = beat(group, "b", 2, frozenset())
    assert (b.epoch, b.assignment) == (3, tps("t", 0, 1, 2, 3))


def test_leaving_and_static_members(group: ConsumerGroup, clock: Clock) -> None:
    join(group, "a", instance_id="i1")
    join(group, "b")
    with pytest.raises(UnreleasedInstanceIdError):
        join(group, "a2", instance_id="i1")
    a = beat(group, "a", 1, tps("t", 0, 1, 2, 3))
    assert a.assignment is not None
    beat(group, "a", 1, a.assignment)
    held = a.assignment
    group.heartbeat(HeartbeatRequest(member_id="a", epoch=-2, instance_id="i1"))  # leaves for now
    back = join(group, "a2", instance_id="i1")
    assert back.assignment == held and back.epoch == 2, "the instance comes back to its partitions and epoch"
    group.heartbeat(HeartbeatRequest(member_id="a2", epoch=-1))
    b = beat(group, "b", 2, frozenset())
    assert (b.epoch, b.assignment) == (group.epoch, tps("t", 0, 1, 2, 3)), "a left: b has everything at once"


def test_new_partitions_and_regex_bump_the_group_epoch(group: ConsumerGroup, topics: dict[str, int]) -> None:
    r = group.heartbeat(HeartbeatRequest(member_id="a", epoch=0, rebalance_timeout_ms=5_000, regex="t.*",
                                         owned=frozenset()))  # fmt: skip
    assert r.assignment == tps("t", 0, 1, 2, 3)
    topics["t"] = 6
    r = beat(group, "a", r.epoch, r.assignment)
    assert r.epoch == 2 and r.assignment == tps("t", *range(6))
    topics["tx"] = 1
    topics["other"] = 1
    r = beat(group, "a", r.epoch, r.assignment)
    assert r.epoch == 3 and r.assignment == tps("t", *range(6)) | tps("tx", 0)


def test_bad_requests(group: ConsumerGroup) -> None:
    with pytest.raises(InvalidHeartbeatError):
        group.heartbeat(HeartbeatRequest(member_id="a", epoch=0, topics=("t",), owned=frozenset()))
    with pytest.raises(InvalidHeartbeatError):
        join(group, "a", topics=())
    with pytest.raises(UnsupportedAssignorError):
        join(group, "a", server_assignor="sticky")
    with pytest.raises(InvalidRegularExpressionError):
        group.heartbeat(HeartbeatRequest(member_id="a", epoch=0, rebalance_timeout_ms=1, regex="(", owned=frozenset()))
    with pytest.raises(ConfigError):
        ConsumerGroupConfig(session_timeout_ms=1_000, heartbeat_interval_ms=1_000)


def test_range_assignor_chosen_by_the_members(group: ConsumerGroup) -> None:
    join(group, "a", server_assignor="range")
    join(group, "b", server_assignor="range")
    assert group.assignor() == "range"
    assert group.describe().members[0].target == tuple(sorted(tps("t", 0, 1)))


def test_the_broker_lists_describes_and_records_consumer_groups(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    try:
        create_topic(broker, "t", 2)
        group = consumer_groups(broker).open("g")
        group.heartbeat(HeartbeatRequest(member_id="a", epoch=0, rebalance_timeout_ms=1_000, topics=("t",),
                                         owned=frozenset()))  # fmt: skip
        (row,) = list_all_groups(broker)
        assert {k: row[k] for k in ("group", "type", "state", "generation", "members", "assignor")} == {
            "group": "g", "type": "consumer", "state": "Stable", "generation": 1, "members": 1, "assignor": "uniform"
        }  # fmt: skip
        assert [(r["member"], r["partition"], r["member_epoch"]) for r in describe_group(broker, "g")] == [
            ("a", 0, 1), ("a", 1, 1)
        ]  # fmt: skip
        history = rebalances(broker, "g")
        assert [(r["generation"], r["member"], r["partition"], r["change"]) for r in history] == [
            (1, "a", 0, "assigned"), (1, "a", 1, "assigned")
        ]  # fmt: skip
        assert history[0]["reason"] == "member a joined"
        with pytest.raises(InconsistentProtocolError):
            check_not_consumer_protocol(broker, "g")
        # the group's own configs override the broker's settings from the next join on
        group_configs.alter(broker, "g", {"consumer.session.timeout.ms": "50000"}, [], validate_only=False)
        assert consumer_groups(broker).open("g").config == ConsumerGroupConfig(session_timeout_ms=50_000)
    finally:
        broker.close()
