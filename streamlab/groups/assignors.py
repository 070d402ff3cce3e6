"""Kafka's consumer-group partition assignors as pure, deterministic functions.

``range``, ``roundrobin`` and ``sticky`` give the result of Kafka's ``RangeAssignor``,
``RoundRobinAssignor`` and ``AbstractStickyAssignor`` (its constrained and general algorithms, without
racks) for the same input. Where Kafka's result hangs on the iteration order of a Java ``HashMap`` or
``HashSet``, that order is reproduced, taking ``members`` in the order the coordinator listed them.
``cooperative-sticky`` assigns like ``sticky``; :func:`cooperative_assignment` gives the first round
of Kafka's ``CooperativeStickyAssignor``. The few deliberate departures are marked "Deviation".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from streamlab.errors import ConfigError, InconsistentProtocolError
from streamlab.model.types import TopicPartition

AssignorName = Literal["range", "roundrobin", "sticky", "cooperative-sticky"]
Assignment = dict[str, list[TopicPartition]]


@dataclass(frozen=True, slots=True)
class Subscription:
    """One member's JoinGroup metadata, as the group leader's assignor sees it."""

    member_id: str
    topics: tuple[str, ...]
    owned: tuple[TopicPartition, ...] = ()
    generation: int = -1  # Kafka's DEFAULT_GENERATION: no generation known
    group_instance_id: str | None = None


Assignor = Callable[[Sequence[Subscription], Mapping[str, int]], Assignment]


def _jkey(s: str) -> bytes:
    # Java's String.compareTo compares UTF-16 code units, not code points; UTF-16-BE bytes sort alike.
    return s.encode("utf-16-be", "surrogatepass")


def _jhash(s: str) -> int:
    b, h = _jkey(s), 0
    for i in range(0, len(b), 2):
        h = (31 * h + (b[i] << 8 | b[i + 1])) & 0xFFFFFFFF
    return h


def _bucket(h: int, capacity: int) -> int:
    return (h ^ (h >> 16)) & (capacity - 1)  # HashMap.hash() folds the high bits in


def _capacity(size: int) -> int:
    cap = 16  # a default HashMap doubles each time it grows past 3/4 full
    while size > cap * 3 // 4:
        cap *= 2
    return cap


def _hashmap_order(keys: Sequence[str]) -> list[str]:
    """Iteration order of a default ``HashMap<String, ?>`` filled with ``keys`` in this order."""
    cap = _capacity(len(keys))
    return sorted(keys, key=lambda k: _bucket(_jhash(k), cap))  # stable, as a bucket keeps insertion order


def _tp_hash(tp: TopicPartition) -> int:
    return (31 * (31 + tp.partition) + _jhash(tp.topic)) & 0xFFFFFFFF  # TopicPartition.hashCode()


class _JavaHashSet:
    """Just enough of ``HashSet<TopicPartition>`` to know which element its iterator yields first."""

    def __init__(self) -> None:
        self.items: dict[TopicPartition, None] = {}  # insertion order, as within a bucket
        self.cap = 16

    def add(self, tp: TopicPartition) -> None:
        self.items[tp] = None
        if len(self.items) > self.cap * 3 // 4:
            self.cap *= 2  # a HashSet never shrinks: its capacity follows the high-water mark

    def first(self) -> TopicPartition:
        cap = self.cap
        return min(self.items, key=lambda tp: _bucket(_tp_hash(tp), cap))


def _member_order(m: Subscription) -> tuple[int, bytes]:
    # AbstractPartitionAssignor.MemberInfo: static members first, by instance id; then by member id.
    if m.group_instance_id is not None:
        return (0, _jkey(m.group_instance_id))
    return (1, _jkey(m.member_id))


def _counts(members: Sequence[Subscription], partitions_per_topic: Mapping[str, int]) -> dict[str, int]:
    # Kafka hands its assignors only subscribed topics that have metadata and partitions.
    subscribed = {t for m in members for t in m.topics}
    return {t: n for t, n in partitions_per_topic.items() if t in subscribed and n > 0}


def _range(members: Sequence[Subscription], partitions_per_topic: Mapping[str, int]) -> Assignment:
    out: Assignment = {m.member_id: [] for m in members}
    for topic, n in _counts(members, partitions_per_topic).items():
        consumers = sorted((m for m in members if topic in m.topics), key=_member_order)
        per, extra = divmod(n, len(consumers))
        for i, m in enumerate(consumers):
            start = per * i + min(i, extra)
            out[m.member_id] += [TopicPartition(topic, p) for p in range(start, start + per + (i < extra))]
    return out


def _roundrobin(members: Sequence[Subscription], partitions_per_topic: Mapping[str, int]) -> Assignment:
    counts = _counts(members, partitions_per_topic)
    out: Assignment = {m.member_id: [] for m in members}
    ring, i = sorted(members, key=_member_order), 0
    for topic in sorted(counts, key=_jkey):
        for p in range(counts[topic]):
            while topic not in ring[i % len(ring)].topics:
                i += 1
            out[ring[i % len(ring)].member_id].append(TopicPartition(topic, p))
            i += 1
    return out


def _claims(
    members: Sequence[Subscription], counts: Mapping[str, int]
) -> tuple[dict[str, list[TopicPartition]], set[TopicPartition]]:
    """Each member's still-valid owned partitions, and those two members of one generation claim."""
    owned: dict[str, list[TopicPartition]] = {}
    claimant: dict[TopicPartition, Subscription] = {}
    doubly_claimed: set[TopicPartition] = set()
    for m in members:
        mine = owned[m.member_id] = []
        for tp in dict.fromkeys(m.owned):
            if not 0 <= tp.partition < counts.get(tp.topic, 0):
                continue
            other = claimant.get(tp)
            if other is not None and m.generation < other.generation:
                continue  # a zombie from an older generation: the newer claim stands
            if other is not None and tp in owned[other.member_id]:
                owned[other.member_id].remove(tp)
            if other is not None and m.generation == other.generation:
                doubly_claimed.add(tp)  # neither claim can be trusted: move it as if revoked
            else:
                mine.append(tp)
            claimant[tp] = m
    return owned, doubly_claimed


def _constrained(
    counts: Mapping[str, int], owned: dict[str, list[TopicPartition]], doubly_claimed: set[TopicPartition]
) -> tuple[Assignment, dict[TopicPartition, str]]:
    """Kafka's ConstrainedAssignmentBuilder, for members that all subscribe to the same topics."""
    min_quota, expected_over = divmod(sum(counts.values()), len(owned))
    max_quota, over = min_quota + (expected_over > 0), 0
    out: Assignment = {c: [] for c in owned}
    revoked: set[TopicPartition] = set()
    under_min: list[str] = []
    at_min: list[str] = []  # members at minQuota that may still take one more
    for c, claimed in owned.items():
        mine = sorted(set(claimed) - doubly_claimed, key=lambda tp: (tp.partition, _jkey(tp.topic)))
        if len(mine) < min_quota:
            keep = len(mine)
            under_min.append(c)
        elif len(mine) >= max_quota and over < expected_over:
            keep, over = max_quota, over + 1
            if over == expected_over:
                at_min.clear()
        else:
            keep = min_quota
            if over < expected_over:
                at_min.append(c)
        out[c] += mine[:keep]
        revoked.update(mine[keep:])
    under_min.sort(key=_jkey)
    at_min.sort(key=_jkey)
    kept = {tp for tps in out.values() for tp in tps}
    topics = sorted(counts, key=_jkey)
    unassigned = [tp for t in topics for p in range(counts[t]) if (tp := TopicPartition(t, p)) not in kept]
    transferring: dict[TopicPartition, str] = {}
    cursor = 0  # Kafka walks under_min with an iterator it restarts whenever it runs off the end
    for tp in unassigned:
        from_under = bool(under_min)
        if cursor >= len(under_min):
            cursor = 0
        if from_under:
            c, cursor = under_min[cursor], cursor + 1
        elif at_min:
            c = at_min.pop(0)
        else:
            raise AssertionError("no member has room left (Kafka throws IllegalStateException)")
        out[c].append(tp)
        if tp in revoked or tp in doubly_claimed:
            transferring[tp] = c
        if from_under and len(out[c]) == min_quota:
            cursor -= 1
            at_min.append(under_min.pop(cursor))
    return out, transferring


class _Movements:
    """Kafka's PartitionMovements: keeps two members from swapping partitions of one topic."""

    def __init__(self) -> None:
        self.moved: dict[TopicPartition, tuple[str, str]] = {}
        self.by_topic: dict[str, dict[tuple[str, str], _JavaHashSet]] = {}

    def move(self, tp: TopicPartition, old: str, new: str) -> None:
        src = old
        if tp in self.moved:
            pair = self.moved.pop(tp)
            src, pairs = pair[0], self.by_topic[tp.topic]
            del pairs[pair].items[tp]
            if not pairs[pair].items:
                del pairs[pair]
            if not pairs:
                del self.by_topic[tp.topic]
            if src == new:
                return  # it went back where it came from: no movement left to remember
        self.moved[tp] = (src, new)
        self.by_topic.setdefault(tp.topic, {}).setdefault((src, new), _JavaHashSet()).add(tp)

    def partition_to_move(self, tp: TopicPartition, old: str, new: str) -> TopicPartition:
        pairs = self.by_topic.get(tp.topic, {})
        if tp in self.moved:
            old = self.moved[tp][0]
        back = pairs.get((new, old))
        # Rather than move a second partition old -> new, undo one that went new -> old earlier.
        return tp if back is None else back.first()


def _general(
    members: Sequence[Subscription], counts: Mapping[str, int], current: dict[str, list[TopicPartition]]
) -> Assignment:
    """Kafka's GeneralAssignmentBuilder, for members whose subscriptions differ."""
    topic_members: dict[str, list[str]] = {t: [] for t in counts}
    member_topics = {m.member_id: {t for t in m.topics if t in counts} for m in members}
    for m in members:
        for t in member_topics[m.member_id]:
            topic_members[t].append(m.member_id)
    newest = max(m.generation for m in members)
    previous: dict[TopicPartition, tuple[str, int]] = {}  # latest owner among older generations
    for m in members:
        for tp in m.owned if m.generation < newest else ():
            if tp not in previous or m.generation > previous[tp][1]:
                previous[tp] = (m.member_id, m.generation)
    owner = {tp: c for c, tps in current.items() for tp in tps}
    revocation_required = False
    for m in members:
        for tp in [tp for tp in current[m.member_id] if tp.topic not in m.topics]:
            current[m.member_id].remove(tp)
            revocation_required = True
    topics = sorted(counts, key=lambda t: (len(topic_members[t]), _jkey(t)))
    every = [TopicPartition(t, p) for t in topics for p in range(counts[t])]
    kept = {tp for tps in current.values() for tp in tps}
    unassigned = [tp for tp in every if tp not in kept]

    def by_load() -> list[str]:
        return sorted(current, key=lambda c: (len(current[c]), _jkey(c)))

    def room(c: str) -> int:
        return sum(counts[t] for t in member_topics[c])

    def balanced() -> bool:
        order = by_load()
        if len(current[order[0]]) >= len(current[order[-1]]) - 1:
            return True
        holder = {tp: c for c, tps in current.items() for tp in tps}
        return not any(
            len(current[c]) + 1 < len(current.get(holder.get(TopicPartition(t, p), c), ()))
            for c in order
            if len(current[c]) < room(c)
            for t in member_topics[c]
            for p in range(counts[t])
        )

    movements = _Movements()

    def reassign(tp: TopicPartition, new: str) -> None:
        tp = movements.partition_to_move(tp, owner[tp], new)
        movements.move(tp, owner[tp], new)
        current[owner[tp]].remove(tp)
        current[new].append(tp)
        owner[tp] = new

    def perform(partitions: Iterable[TopicPartition]) -> None:
        modified = True
        while modified:  # Kafka makes full passes until one changes nothing
            modified = False
            for tp in partitions:
                if balanced():
                    break
                size, prev = len(current[owner[tp]]), previous[tp][0] if tp in previous else None
                # Deviation: Kafka would hand a partition back to a previous owner even if that one
                # no longer subscribes to its topic (or crash if it was set aside); we never do.
                if prev in current and tp.topic in member_topics[prev] and size > len(current[prev]) + 1:
                    reassign(tp, prev)
                elif any(size > len(current.get(o, ())) + 1 for o in topic_members[tp.topic]):
                    reassign(tp, next(o for o in by_load() if tp.topic in member_topics[o]))
                else:
                    continue
                modified = True

    for tp in unassigned:
        target = next((c for c in by_load() if tp.topic in member_topics[c]), None)
        if target is not None:
            current[target].append(tp)
            owner[tp] = target
    # Only partitions with two or more possible owners, and members that could change, take part.
    fixed_topics = {t for t, ms in topic_members.items() if len(ms) < 2}
    every = [tp for tp in every if tp.topic not in fixed_topics]
    unassigned = [tp for tp in unassigned if tp.topic not in fixed_topics]
    fixed = {
        c: current.pop(c)
        for c in member_topics
        if len(current[c]) >= room(c) and all(tp.topic in fixed_topics for tp in current[c])
    }
    if not revocation_required:
        perform(unassigned)
    perform(every)
    # Kafka would now revert if the balance score did not improve, but every move above goes from a
    # member to one with at least two fewer partitions, so the score always improves.
    return current | fixed


def _sticky_with_transfers(
    members: Sequence[Subscription], partitions_per_topic: Mapping[str, int]
) -> tuple[Assignment, dict[TopicPartition, str] | None]:
    if not members:
        return {}, {}
    counts = _counts(members, partitions_per_topic)
    by_id = {m.member_id: m for m in members}
    ordered = [by_id[c] for c in _hashmap_order(list(by_id))]
    owned, doubly_claimed = _claims(ordered, counts)
    # Deviation: Kafka compares against the first non-empty subscription it meets, so a member
    # subscribed to nothing can pass as "equal" and be handed partitions; here equal means equal.
    if len({frozenset(m.topics) for m in members}) == 1:
        return _constrained(counts, owned, doubly_claimed)
    return _general(ordered, counts, owned), None


def _sticky(members: Sequence[Subscription], partitions_per_topic: Mapping[str, int]) -> Assignment:
    return _sticky_with_transfers(members, partitions_per_topic)[0]


ASSIGNORS: dict[str, Assignor] = {
    "range": _range,
    "roundrobin": _roundrobin,
    "sticky": _sticky,
    "cooperative-sticky": _sticky,  # the target; cooperative_assignment() gives the first round
}


def _checked(members: Sequence[Subscription]) -> Sequence[Subscription]:
    ids = [m.member_id for m in members]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"member ids must be unique in a group; repeated: {', '.join(twice)}")
    return members


def _sorted(a: Mapping[str, Sequence[TopicPartition]], members: Sequence[Subscription]) -> Assignment:
    return {m.member_id: sorted(a.get(m.member_id, ())) for m in members}


def assign(name: str, members: Sequence[Subscription], partitions_per_topic: Mapping[str, int]) -> Assignment:
    """member_id -> sorted partitions under assignor ``name``; every member appears."""
    assignor = ASSIGNORS.get(name)
    if assignor is None:
        raise ConfigError(f"unknown partition assignor {name!r}; known: {', '.join(ASSIGNORS)}")
    return _sorted(assignor(_checked(members), partitions_per_topic), members)


def cooperative_assignment(members: Sequence[Subscription], partitions_per_topic: Mapping[str, int]) -> Assignment:
    """What Kafka's CooperativeStickyAssignor hands out in the first of its two rebalances.

    It is the sticky assignment less every partition moving between two live members: the old owner
    must revoke it and rejoin before the follow-up rebalance gives it to the new one.
    """
    target, transferring = _sticky_with_transfers(_checked(members), partitions_per_topic)
    if transferring is None:  # Kafka's general algorithm leaves this to be worked out afterwards
        added: dict[TopicPartition, str] = {}
        given_up: set[TopicPartition] = set()
        for m in members:
            mine = set(target[m.member_id])
            added.update((tp, m.member_id) for tp in mine if tp not in m.owned)
            given_up.update(tp for tp in m.owned if tp not in mine)
        transferring = {tp: c for tp, c in added.items() if tp in given_up}
    for tp, c in transferring.items():
        target[c].remove(tp)
    return _sorted(target, members)


def cooperative_revocations(
    old: Mapping[str, Sequence[TopicPartition]], new: Mapping[str, Sequence[TopicPartition]]
) -> dict[str, list[TopicPartition]]:
    """Per member, the partitions it owned under ``old`` that ``new`` no longer gives it."""
    return {
        member: sorted(set(old.get(member, ())) - set(new.get(member, ()))) for member in dict.fromkeys([*old, *new])
    }


def choose_protocol(member_protocols: Sequence[Sequence[str]]) -> str:
    """The group's assignor, chosen as Kafka's group coordinator chooses it.

    Candidates are the protocols every member supports; each member votes for its most preferred
    candidate and the most votes win. A tie goes to the protocol first in Java ``HashMap`` order, as
    in ``ClassicGroup.selectProtocol``.
    """
    if not member_protocols:
        raise InconsistentProtocolError("cannot choose a protocol for a group with no members")
    candidates = set(member_protocols[0]).intersection(*member_protocols[1:])
    if not candidates:
        listed = "; ".join(f"member {i}: [{', '.join(p)}]" for i, p in enumerate(member_protocols))
        raise InconsistentProtocolError(f"no partition assignor is supported by every member ({listed})")
    votes: dict[str, int] = {}
    for protocols in member_protocols:
        choice = next(p for p in protocols if p in candidates)
        votes[choice] = votes.get(choice, 0) + 1
    best = max(votes.values())
    return next(p for p in _hashmap_order(list(votes)) if votes[p] == best)
