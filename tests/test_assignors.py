"""Partition assignors: Kafka's documented examples, Kafka-specific edge cases, and properties."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streamlab.errors import ConfigError, InconsistentProtocolError
from streamlab.groups.assignors import (
    ASSIGNORS,
    Subscription,
    assign,
    choose_protocol,
    cooperative_assignment,
    cooperative_revocations,
)
from streamlab.model.types import TopicPartition

S = Subscription
Assignment = dict[str, list[TopicPartition]]


def tps(spec: str) -> list[TopicPartition]:
    """Partitions in the Javadoc's notation: ``"t0p0 t1p2"``, returned sorted."""
    out = []
    for token in spec.split():
        match = re.fullmatch(r"(.+)p(\d+)", token)
        assert match, token
        out.append(TopicPartition(match[1], int(match[2])))
    return sorted(out)


def owning(a: Assignment, members: Sequence[Subscription], generation: int = 1) -> list[Subscription]:
    """The next rebalance's subscriptions: each member now owns what ``a`` gave it."""
    return [S(m.member_id, m.topics, tuple(a[m.member_id]), generation, m.group_instance_id) for m in members]


def owners(a: Mapping[str, Sequence[TopicPartition]]) -> dict[TopicPartition, str]:
    return {tp: member for member, parts in a.items() for tp in parts}


# --- Kafka's Javadoc examples ---------------------------------------------------------------


def test_range_javadoc_example() -> None:
    members = [S("C0", ("t0", "t1")), S("C1", ("t0", "t1"))]
    assert assign("range", members, {"t0": 3, "t1": 3}) == {
        "C0": tps("t0p0 t0p1 t1p0 t1p1"),
        "C1": tps("t0p2 t1p2"),
    }


def test_roundrobin_javadoc_identical_subscriptions() -> None:
    members = [S("C0", ("t0", "t1")), S("C1", ("t0", "t1"))]
    assert assign("roundrobin", members, {"t0": 3, "t1": 3}) == {
        "C0": tps("t0p0 t0p2 t1p1"),
        "C1": tps("t0p1 t1p0 t1p2"),
    }


UNEQUAL = [S("C0", ("t0",)), S("C1", ("t0", "t1")), S("C2", ("t0", "t1", "t2"))]
UNEQUAL_PARTITIONS = {"t0": 1, "t1": 2, "t2": 3}


def test_roundrobin_javadoc_unequal_subscriptions() -> None:
    assert assign("roundrobin", UNEQUAL, UNEQUAL_PARTITIONS) == {
        "C0": tps("t0p0"),
        "C1": tps("t1p0"),
        "C2": tps("t1p1 t2p0 t2p1 t2p2"),
    }


FOUR_TOPICS = ("t0", "t1", "t2", "t3")


def test_sticky_javadoc_example_1_member_leaves() -> None:
    partitions = dict.fromkeys(FOUR_TOPICS, 2)
    members = [S(c, FOUR_TOPICS) for c in ("C0", "C1", "C2")]
    first = assign("sticky", members, partitions)
    # "The assignment with both sticky and round robin assignors will be":
    assert first == assign("roundrobin", members, partitions)
    assert first == {"C0": tps("t0p0 t1p1 t3p0"), "C1": tps("t0p1 t2p0 t3p1"), "C2": tps("t1p0 t2p1")}

    remaining = owning(first, [members[0], members[2]])
    assert assign("roundrobin", remaining, partitions) == {
        "C0": tps("t0p0 t1p0 t2p0 t3p0"),
        "C2": tps("t0p1 t1p1 t2p1 t3p1"),
    }
    second = assign("sticky", remaining, partitions)
    # The Javadoc's point: every earlier assignment is preserved and the result stays balanced.
    assert set(first["C0"]) <= set(second["C0"]) and set(first["C2"]) <= set(second["C2"])
    assert len(second["C0"]) == len(second["C2"]) == 4
    # Which of C1's partitions go where is the modern (2.8+) constrained algorithm's answer; the
    # Javadoc's C0:+t2p0, C2:+t0p1,t3p1 was computed by the original algorithm.
    assert second == {"C0": tps("t0p0 t0p1 t1p1 t3p0"), "C2": tps("t1p0 t2p0 t2p1 t3p1")}
    # C1 has left, so nothing is owned by a live member and nothing needs a second round.
    assert cooperative_assignment(remaining, partitions) == second


def test_sticky_javadoc_example_2_unequal_subscriptions() -> None:
    first = assign("sticky", UNEQUAL, UNEQUAL_PARTITIONS)
    assert first == {"C0": tps("t0p0"), "C1": tps("t1p0 t1p1"), "C2": tps("t2p0 t2p1 t2p2")}

    remaining = owning(first, UNEQUAL[1:])
    second = assign("sticky", remaining, UNEQUAL_PARTITIONS)
    assert second == {"C1": tps("t0p0 t1p0 t1p1"), "C2": tps("t2p0 t2p1 t2p2")}  # preserves 5
    robin_before = assign("roundrobin", UNEQUAL, UNEQUAL_PARTITIONS)
    robin_after = assign("roundrobin", owning(robin_before, UNEQUAL[1:]), UNEQUAL_PARTITIONS)
    assert robin_after == {"C1": tps("t0p0 t1p1"), "C2": tps("t1p0 t2p0 t2p1 t2p2")}  # preserves 3


# --- ordering, static membership, input handling --------------------------------------------


@pytest.mark.parametrize("name", ["range", "roundrobin"])
def test_static_members_sort_by_instance_id_and_come_first(name: str) -> None:
    members = [
        S("a-dynamic", ("t",)),
        S("z-static", ("t",), group_instance_id="instance-1"),
        S("m-static", ("t",), group_instance_id="instance-2"),
    ]
    result = assign(name, members, {"t": 3})
    assert result == {"z-static": tps("tp0"), "m-static": tps("tp1"), "a-dynamic": tps("tp2")}


def test_member_ids_compare_like_java_strings() -> None:
    # Java orders by UTF-16 code unit: the surrogate pair of U+1F600 sorts before U+FB01.
    result = assign("range", [S("\ufb01", ("t",)), S("\U0001f600", ("t",))], {"t": 3})
    assert result == {"\ufb01": tps("tp2"), "\U0001f600": tps("tp0 tp1")}


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_only_subscribed_known_topics_with_partitions_are_assigned(name: str) -> None:
    members = [S("a", ("t", "no-metadata")), S("b", ("t", "empty")), S("idle", ())]
    result = assign(name, members, {"t": 3, "empty": 0, "unsubscribed": 4})
    assert list(result) == ["a", "b", "idle"]
    assert result["idle"] == []
    assert sorted(tp for parts in result.values() for tp in parts) == tps("tp0 tp1 tp2")


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_empty_group(name: str) -> None:
    assert assign(name, [], {"t": 3}) == {}


def test_unknown_assignor_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'uniform'"):
        assign("uniform", [S("a", ("t",))], {"t": 1})


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_duplicate_member_ids_are_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match="repeated: a"):
        assign(name, [S("a", ("t",)), S("a", ("t",))], {"t": 2})


# --- sticky: ownership claims ---------------------------------------------------------------


def test_higher_generation_wins_a_doubly_claimed_partition() -> None:
    zombie = S("B", ("t0",), tuple(tps("t0p0 t0p2")), generation=1)
    current = S("A", ("t0",), tuple(tps("t0p0 t0p1")), generation=2)
    for members in ([current, zombie], [zombie, current]):
        expected = {"A": tps("t0p0 t0p1"), "B": tps("t0p2 t0p3")}
        assert assign("sticky", members, {"t0": 4}) == expected
        assert cooperative_assignment(members, {"t0": 4}) == expected


def test_same_generation_double_claim_is_moved_as_if_revoked() -> None:
    members = [S("A", ("t0",), tuple(tps("t0p0 t0p1")), 1), S("B", ("t0",), tuple(tps("t0p0 t0p2")), 1)]
    assert assign("sticky", members, {"t0": 4}) == {"A": tps("t0p0 t0p1"), "B": tps("t0p2 t0p3")}
    # Neither claim is trusted, so t0p0 only reaches its owner after a second round.
    assert cooperative_assignment(members, {"t0": 4}) == {"A": tps("t0p1"), "B": tps("t0p2 t0p3")}


def test_who_keeps_the_extra_partition_follows_kafkas_hashmap_order() -> None:
    # Three members own 3 each and a fourth joins: one may keep 3. Kafka walks its HashMap of
    # members, where "p" (hash 112, bucket 0) comes before "a" (97, bucket 1) and "b" (98, bucket 2).
    members = [
        S(m, ("t0",), tuple(TopicPartition("t0", p) for p in range(3 * i, 3 * i + 3)), 1) for i, m in enumerate("abp")
    ]
    joined = [*members, S("z", ("t0",))]
    expected = {"a": tps("t0p0 t0p1"), "b": tps("t0p3 t0p4"), "p": tps("t0p6 t0p7 t0p8"), "z": tps("t0p2 t0p5")}
    assert assign("sticky", joined, {"t0": 9}) == expected
    assert cooperative_assignment(joined, {"t0": 9}) == {**expected, "z": []}


def test_general_sticky_undoes_a_move_rather_than_making_a_second_one() -> None:
    # Kafka's PartitionMovements: balancing first moves t1p2 C1 -> C3, and when it later wants to
    # move t1p0 from C3 to C1 it sends t1p2 back instead, so C1 keeps every t1 partition it owned.
    members = [
        S("C9", ("t3",)),
        S("C3", ("t1",)),
        S("C2", ("t3",)),
        S("C1", ("t3", "t1"), tuple(tps("t1p4 t3p3 t1p2 t3p4 t1p3"))),
        S("C4", ("t3",)),
    ]
    partitions = {"t1": 6, "t3": 5}
    expected = {
        "C9": tps("t3p2"),
        "C3": tps("t1p0 t1p1 t1p5"),
        "C2": tps("t3p0 t3p3"),
        "C1": tps("t1p2 t1p3 t1p4"),
        "C4": tps("t3p1 t3p4"),
    }
    assert assign("sticky", members, partitions) == expected
    assert cooperative_assignment(members, partitions) == {**expected, "C2": tps("t3p0"), "C4": tps("t3p1")}


def test_owned_partitions_of_vanished_topics_or_partitions_are_ignored() -> None:
    members = [S("A", ("t0",), tuple(tps("t0p0 gone0p0 t0p9")), 1), S("B", ("t0",), (), 1)]
    assert assign("sticky", members, {"t0": 2}) == {"A": tps("t0p0"), "B": tps("t0p1")}


def test_previous_owner_that_unsubscribed_never_gets_the_partition_back() -> None:
    # Kafka 3.x/4.x would hand t2p0 back to O (its owner in an older generation) although O now
    # subscribes to t1 only; we keep every partition with a subscriber instead.
    members = [
        S("O", ("t1",), tuple(tps("t2p0")), 1),
        S("N1", ("t2",), tuple(tps("t2p0 t2p1 t2p2 t2p3")), 2),
        S("N2", ("t1", "t2")),
    ]
    partitions = {"t1": 1, "t2": 4}
    assert assign("sticky", members, partitions) == {
        "O": tps("t1p0"),
        "N1": tps("t2p2 t2p3"),
        "N2": tps("t2p0 t2p1"),
    }
    assert cooperative_assignment(members, partitions)["N2"] == []  # N1 still holds both


# --- cooperative protocol -------------------------------------------------------------------


def test_cooperative_rebalance_hands_partitions_over_in_two_rounds() -> None:
    partitions = {"t0": 4}
    alone = [S("C0", ("t0",), tuple(tps("t0p0 t0p1 t0p2 t0p3")), 1)]
    joined = [*alone, S("C1", ("t0",))]
    target = assign("cooperative-sticky", joined, partitions)
    assert target == {"C0": tps("t0p0 t0p1"), "C1": tps("t0p2 t0p3")}

    first = cooperative_assignment(joined, partitions)
    assert first == {"C0": tps("t0p0 t0p1"), "C1": []}
    old = {m.member_id: list(m.owned) for m in joined}
    assert cooperative_revocations(old, first) == {"C0": tps("t0p2 t0p3"), "C1": []}

    second = cooperative_assignment(owning(first, joined, generation=2), partitions)
    assert second == target


def test_cooperative_revocations() -> None:
    old = {"a": tps("t0p1 t0p0"), "gone": tps("t1p0")}
    new = {"a": tps("t0p0 t0p2"), "fresh": tps("t1p0")}
    assert cooperative_revocations(old, new) == {"a": tps("t0p1"), "gone": tps("t1p0"), "fresh": []}


# --- choose_protocol ------------------------------------------------------------------------


def test_choose_protocol_majority_of_first_choices() -> None:
    votes = [["range", "roundrobin"], ["roundrobin", "range"], ["roundrobin", "range"]]
    assert choose_protocol(votes) == "roundrobin"


def test_choose_protocol_votes_only_for_common_protocols() -> None:
    votes = [["cooperative-sticky", "range"], ["cooperative-sticky", "range"], ["range"]]
    assert choose_protocol(votes) == "range"


def test_choose_protocol_breaks_ties_in_java_hashmap_order() -> None:
    # Neither first vote nor alphabetical order: "sticky" comes first in the coordinator's HashMap.
    assert choose_protocol([["cooperative-sticky", "sticky"], ["sticky", "cooperative-sticky"]]) == "sticky"
    assert choose_protocol([["roundrobin", "range"], ["range", "roundrobin"]]) == "range"


def test_choose_protocol_without_a_common_protocol() -> None:
    with pytest.raises(InconsistentProtocolError, match=r"member 1: \[roundrobin\]"):
        choose_protocol([["range", "sticky"], ["roundrobin"]])
    with pytest.raises(InconsistentProtocolError):
        choose_protocol([["range"], []])
    with pytest.raises(InconsistentProtocolError, match="no members"):
        choose_protocol([])


# --- properties -----------------------------------------------------------------------------

TOPICS = ("t0", "t1", "t2", "t3")
TOPIC_POOL = (*TOPICS, "absent")
ids = st.text(alphabet="abcz09_\u00e9\ufb01\U0001f600", min_size=1, max_size=3)
instance_ids = st.none() | st.sampled_from(["i0", "i1", "i2"])
generations = st.sampled_from([-1, 1, 2, 3])
# Built once, at import (and the owned lists once a group): building strategies on every
# draw cost more than drawing from them.
partition_counts = st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 7), min_size=1)
topic_lists = st.lists(st.sampled_from(TOPIC_POOL), unique=True, max_size=4)
nonempty_topic_lists = topic_lists.filter(bool)
member_ids = st.lists(ids, min_size=1, max_size=7, unique=True)


@st.composite
def groups(
    draw: st.DrawFn, same_topics: bool = False, owned: bool = True, disjoint: bool = False
) -> tuple[list[Subscription], dict[str, int]]:
    partitions = draw(partition_counts)
    everything = [TopicPartition(t, p) for t, n in sorted(partitions.items()) for p in range(n)]
    owned_lists = st.lists(st.sampled_from(everything), unique=True, max_size=6) if owned and everything else None
    common = draw(nonempty_topic_lists)
    members, taken, instances = [], set(), set()
    for member_id in draw(member_ids):
        instance = draw(instance_ids)
        if instance in instances:
            instance = None  # the coordinator fences a second member with the same instance id
        instances.add(instance)
        mine = draw(owned_lists) if owned_lists is not None else []
        if disjoint:
            mine = [tp for tp in mine if tp not in taken]
            taken.update(mine)
        topics = common if same_topics else draw(topic_lists)
        members.append(S(member_id, tuple(topics), tuple(mine), draw(generations), instance))
    return members, partitions


def expected_partitions(members: Sequence[Subscription], partitions: Mapping[str, int]) -> set[TopicPartition]:
    subscribed = {t for m in members for t in m.topics}
    return {TopicPartition(t, p) for t, n in partitions.items() if t in subscribed for p in range(n)}


def check_valid(
    members: Sequence[Subscription], result: Assignment, complete_for: Mapping[str, int] | None = None
) -> None:
    """Every member listed, lists sorted, no partition twice, only subscribed topics; all if asked."""
    assert list(result) == [m.member_id for m in members]
    topics = {m.member_id: set(m.topics) for m in members}
    flat = [tp for parts in result.values() for tp in parts]
    assert len(flat) == len(set(flat)), "a partition was assigned twice"
    for member, parts in result.items():
        assert parts == sorted(parts)
        assert all(tp.topic in topics[member] for tp in parts), f"{member} got an unsubscribed topic"
    if complete_for is not None:
        assert set(flat) == expected_partitions(members, complete_for)


def sizes(a: Assignment) -> list[int]:
    return [len(v) for v in a.values()]


def no_transferable_imbalance(members: Sequence[Subscription], a: Assignment) -> bool:
    """Kafka's balance guarantee when subscriptions differ."""
    topics = {m.member_id: set(m.topics) for m in members}
    return not any(
        len(a[small]) + 1 < len(a[big]) and any(tp.topic in topics[small] for tp in a[big]) for small in a for big in a
    )


RUNS = settings(deadline=None, max_examples=150)


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
@RUNS
@given(group=groups())
def test_every_partition_goes_to_exactly_one_subscriber(
    name: str, group: tuple[list[Subscription], dict[str, int]]
) -> None:
    members, partitions = group
    result = assign(name, members, partitions)
    check_valid(members, result, complete_for=partitions)
    assert assign(name, members, partitions) == result  # pure: same input, same answer
    if name == "cooperative-sticky":
        first_round = cooperative_assignment(members, partitions)
        check_valid(members, first_round)
        assert all(set(first_round[m]) <= set(result[m]) for m in result)


@pytest.mark.parametrize("name", ["range", "roundrobin"])
@RUNS
@given(group=groups(owned=False), data=st.data())
def test_range_and_roundrobin_ignore_member_order(
    name: str, group: tuple[list[Subscription], dict[str, int]], data: st.DataObject
) -> None:
    members, partitions = group
    shuffled = data.draw(st.permutations(members))
    assert assign(name, shuffled, partitions) == assign(name, members, partitions)


@RUNS
@given(group=groups(same_topics=True))
def test_sticky_is_balanced_when_subscriptions_are_equal(group: tuple[list[Subscription], dict[str, int]]) -> None:
    members, partitions = group
    counts = sizes(assign("sticky", members, partitions))
    assert max(counts) - min(counts) <= 1


@RUNS
@given(group=groups(owned=False), data=st.data())
def test_sticky_leaves_no_transferable_imbalance(
    group: tuple[list[Subscription], dict[str, int]], data: st.DataObject
) -> None:
    members, partitions = group
    first = assign("sticky", members, partitions)
    assert no_transferable_imbalance(members, first)
    # Next generation: some leave, one joins, one changes its subscription.
    survivors = owning(first, data.draw(st.lists(st.sampled_from(members), unique=True, min_size=1)))
    changed = data.draw(st.lists(st.sampled_from(TOPIC_POOL), unique=True, max_size=4))
    survivors[0] = S(survivors[0].member_id, tuple(changed), survivors[0].owned, 1)
    joined = [*survivors, S("newcomer", tuple(data.draw(st.lists(st.sampled_from(TOPICS), unique=True))))]
    second = assign("sticky", joined, partitions)
    check_valid(joined, second, complete_for=partitions)
    assert no_transferable_imbalance(joined, second)


@RUNS
@given(group=groups(same_topics=True, owned=False), data=st.data())
def test_sticky_removing_a_member_moves_only_its_partitions(
    group: tuple[list[Subscription], dict[str, int]], data: st.DataObject
) -> None:
    members, partitions = group
    assume(len(members) > 1)
    before = assign("sticky", members, partitions)
    leaver = data.draw(st.sampled_from(members))
    after = assign("sticky", owning(before, [m for m in members if m is not leaver]), partitions)
    for member, parts in after.items():
        assert set(before[member]) <= set(parts)
    moved = {tp for tp, owner in owners(after).items() if owners(before)[tp] != owner}
    assert moved == set(before[leaver.member_id])


@RUNS
@given(group=groups(same_topics=True, owned=False))
def test_sticky_adding_a_member_moves_the_minimum(group: tuple[list[Subscription], dict[str, int]]) -> None:
    members, partitions = group
    before = assign("sticky", members, partitions)
    newcomer = S("newcomer", members[0].topics)
    after = assign("sticky", [*owning(before, members), newcomer], partitions)
    total = sum(sizes(before))
    assert len(after[newcomer.member_id]) == total // (len(members) + 1)  # its fair share, no more
    for member in before:
        assert set(after[member]) <= set(before[member])  # everyone else only gives up partitions


@RUNS
@given(group=groups(disjoint=True))
def test_cooperative_never_hands_out_a_partition_another_member_owns(
    group: tuple[list[Subscription], dict[str, int]],
) -> None:
    members, partitions = group
    first = cooperative_assignment(members, partitions)
    target = assign("cooperative-sticky", members, partitions)
    check_valid(members, first)
    owned_by = {tp: m.member_id for m in members for tp in m.owned}
    for member, parts in first.items():
        assert set(parts) <= set(target[member])
        assert all(owned_by.get(tp, member) == member for tp in parts)
    # Only the partitions changing hands between live members are held back.
    held_back = {tp for parts in target.values() for tp in parts} - {tp for parts in first.values() for tp in parts}
    assert all(tp in owned_by and owned_by[tp] != owners(target)[tp] for tp in held_back)


@RUNS
@given(group=groups(same_topics=True, disjoint=True))
def test_cooperative_two_rounds_complete_the_handover(group: tuple[list[Subscription], dict[str, int]]) -> None:
    members, partitions = group
    first = cooperative_assignment(members, partitions)
    revoked = cooperative_revocations({m.member_id: m.owned for m in members}, first)
    for m in members:
        assert set(revoked[m.member_id]) == set(m.owned) - set(first[m.member_id])
    next_round = owning(first, members, generation=4)
    assert cooperative_assignment(next_round, partitions) == assign("cooperative-sticky", next_round, partitions)


protocol_names = st.sampled_from(["range", "roundrobin", "sticky", "cooperative-sticky", "custom"])


@RUNS
@given(st.lists(st.lists(protocol_names, unique=True), min_size=1, max_size=6))
def test_choose_protocol_picks_a_common_protocol_with_most_votes(member_protocols: list[list[str]]) -> None:
    common = set(member_protocols[0]).intersection(*member_protocols[1:])
    if not common:
        with pytest.raises(InconsistentProtocolError):
            choose_protocol(member_protocols)
        return
    chosen = choose_protocol(member_protocols)
    assert chosen in common
    votes = [next(p for p in protocols if p in common) for protocols in member_protocols]
    assert votes.count(chosen) == max(votes.count(p) for p in votes)
