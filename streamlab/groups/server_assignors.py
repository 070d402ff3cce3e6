"""The server-side assignors of KIP-848 consumer groups: ``uniform`` and ``range``.

In the consumer group protocol the coordinator, not a leader client, computes each
member's *target* assignment whenever the group epoch moves (a member joined, left or
changed its subscription, partitions were added). Both assignors are pure, deterministic
functions of the members' subscriptions, the partition counts and the previous target:

``uniform`` (Kafka's ``UniformAssignor``, the default)
    Balanced and sticky: every partition of a subscribed topic goes to one member
    subscribed to it; a partition stays with its previous target owner while that owner
    is still eligible and not above its share; the rest go to the eligible member with the
    fewest partitions; then partitions move from the most to the least loaded eligible
    member until no move narrows the spread. With identical subscriptions every member
    ends with ``floor(P/N)`` or ``ceil(P/N)`` partitions, as in Kafka.
``range`` (Kafka's server-side ``RangeAssignor``)
    Per topic, the members subscribed to it, in member-id order, get contiguous ranges
    of partitions; the first ``P % N`` get one more. Members with the same subscription
    get the same partition numbers of co-partitioned topics (joins on keys line up).
    Deviation: Kafka's version also keeps partitions with their previous owner where the
    quotas allow; this one always computes the ranges afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from streamlab.model.types import TopicPartition

ServerAssignorName = Literal["uniform", "range"]
# member id -> its target partitions
Target = dict[str, frozenset[TopicPartition]]
ServerAssignor = Callable[
    [Mapping[str, frozenset[str]], Mapping[str, int], Mapping[str, frozenset[TopicPartition]]], Target
]

DEFAULT_ASSIGNOR: ServerAssignorName = "uniform"  # the first of Kafka's group.consumer.assignors


def _partitions(subscriptions: Mapping[str, frozenset[str]], counts: Mapping[str, int]) -> list[TopicPartition]:
    topics = sorted({t for topics in subscriptions.values() for t in topics if t in counts})
    return [TopicPartition(t, p) for t in topics for p in range(counts[t])]


def uniform(
    subscriptions: Mapping[str, frozenset[str]],
    counts: Mapping[str, int],
    previous: Mapping[str, frozenset[TopicPartition]],
) -> Target:
    """Balanced, sticky assignment (see the module docstring)."""
    members = sorted(subscriptions)
    owned: dict[str, set[TopicPartition]] = {m: set() for m in members}
    if not members:
        return {}
    every = _partitions(subscriptions, counts)
    eligible = {tp: [m for m in members if tp.topic in subscriptions[m]] for tp in every}
    # A member's fair share if every member could take every partition: keeping more than
    # this would only be undone by the balancing below.
    share = -(-len(every) // len(members))
    taken: set[TopicPartition] = set()
    for member in members:
        for tp in sorted(previous.get(member, ()), key=lambda t: (t.topic, t.partition)):
            if tp in eligible and member in eligible[tp] and tp not in taken and len(owned[member]) < share:
                owned[member].add(tp)
                taken.add(tp)
    for tp in every:
        if tp not in taken and eligible[tp]:
            owned[min(eligible[tp], key=lambda m: (len(owned[m]), m))].add(tp)
    # Narrow the spread: move a partition from a member to an eligible one with at least two fewer.
    moved = True
    while moved:
        moved = False
        for member in sorted(members, key=lambda m: (-len(owned[m]), m)):
            for tp in sorted(owned[member], key=lambda t: (t.topic, -t.partition)):
                lighter = [m for m in eligible[tp] if len(owned[m]) < len(owned[member]) - 1]
                if lighter:
                    target = min(lighter, key=lambda m: (len(owned[m]), m))
                    owned[member].discard(tp)
                    owned[target].add(tp)
                    moved = True
                    break
            if moved:
                break
    return {m: frozenset(owned[m]) for m in members}


def range_(
    subscriptions: Mapping[str, frozenset[str]],
    counts: Mapping[str, int],
    previous: Mapping[str, frozenset[TopicPartition]],
) -> Target:
    """Per-topic contiguous ranges (see the module docstring); ``previous`` is not used."""
    owned: dict[str, set[TopicPartition]] = {m: set() for m in subscriptions}
    for topic in sorted({t for topics in subscriptions.values() for t in topics if t in counts}):
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        quota, extra = divmod(counts[topic], len(members))
        start = 0
        for i, member in enumerate(members):
            n = quota + (1 if i < extra else 0)
            owned[member].update(TopicPartition(topic, p) for p in range(start, start + n))
            start += n
    return {m: frozenset(tps) for m, tps in owned.items()}


SERVER_ASSIGNORS: dict[str, ServerAssignor] = {"uniform": uniform, "range": range_}
