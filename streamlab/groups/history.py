"""The ownership changes of each generation, as :class:`GroupEvent` rows.

The coordinator hands these to its recorder (the catalog's ``group_events``) so the
rebalance history survives restarts and can be drawn; building them is kept apart from
the state machine so that what is recorded reads in one place.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from streamlab.groups.state import GroupEvent
from streamlab.model.types import TopicPartition


def now_ms() -> int:
    return int(time.time() * 1000)


def revocations(
    generation: int, reason: str, last_assignment: Mapping[str, Sequence[TopicPartition]]
) -> list[GroupEvent]:
    """Every partition taken back when the group empties."""
    old = {tp: m for m, tps in last_assignment.items() for tp in tps}
    now = now_ms()
    return [GroupEvent(generation, now, reason, owner, tp.topic, tp.partition, "revoked") for tp, owner in old.items()]


def ownership_changes(
    generation: int,
    reason: str,
    previous: Mapping[str, Sequence[TopicPartition]],
    new: Mapping[str, Sequence[TopicPartition]],
    members: Iterable[str],
) -> list[GroupEvent]:
    """What moved from ``previous`` to ``new``: revocations first, then for each member
    what it keeps and what it is newly assigned."""
    events: list[GroupEvent] = []
    now = now_ms()
    for member_id, tps in previous.items():
        for tp in tps:
            if tp not in new.get(member_id, ()):
                events.append(GroupEvent(generation, now, reason, member_id, tp.topic, tp.partition, "revoked"))
    for member_id in members:
        for tp in new.get(member_id, ()):
            change = "kept" if tp in previous.get(member_id, ()) else "assigned"
            events.append(GroupEvent(generation, now, reason, member_id, tp.topic, tp.partition, change))
    return events
