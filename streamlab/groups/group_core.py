"""A classic group's data and its state transitions, the layer the rest builds on.

:class:`GroupCore` holds the members, the generation and the bookkeeping of a rebalance
in progress, looks members up (fencing stale static ones), removes them and starts a
rebalance. Completing a rebalance lives in :mod:`.rebalance`, the requests members send in
:mod:`.join_sync` and :mod:`.group`; splitting the class into layers keeps each readable
on its own while :class:`~streamlab.groups.group.Group` stays one object with one lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

from streamlab.errors import FencedInstanceError, RebalanceInProgressError, UnknownMemberError
from streamlab.groups.state import (
    VALID_PREVIOUS,
    GroupDescription,
    GroupEvent,
    GroupState,
    Member,
    MemberDescription,
)
from streamlab.model.types import TopicPartition

Recorder = Callable[[str, list[GroupEvent]], None]
PartitionCounter = Callable[[Sequence[str]], dict[str, int]]
Clock = Callable[[], float]


def answer(waiter: Future[Any] | None, result: object = None, error: BaseException | None = None) -> None:
    """Answer a waiting request unless it is gone (answered, or cancelled by its client)."""
    if waiter is None or waiter.done():
        return
    try:
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(result)
    except InvalidStateError:  # cancelled in between
        pass


class GroupCore:
    """A group's members and state; every method expects :attr:`cv` to be held unless
    it takes it itself."""

    def __init__(
        self,
        group_id: str,
        partitions_of: PartitionCounter,
        record: Recorder,
        *,
        clock: Clock = time.monotonic,
        initial_rebalance_delay_ms: int = 0,
    ) -> None:
        self.group_id = group_id
        self.state = GroupState.EMPTY
        self.generation = 0
        self.protocol: str | None = None
        self.protocol_type: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        self._partitions_of = partitions_of
        self._record = record
        self._clock = clock
        self._initial_delay = initial_rebalance_delay_ms / 1000
        self._reason = ""
        self._rebalance_started = 0.0
        self._not_before = 0.0  # group.initial.rebalance.delay.ms: wait for more first members
        self._initial_phase = False
        self._follow_up = False
        self._known_partitions: dict[str, int] = {}
        self._last_assignment: dict[str, tuple[TopicPartition, ...]] = {}
        self._static: dict[str, str] = {}  # group.instance.id -> member id
        self._pending: dict[str, float] = {}  # ids handed out with MEMBER_ID_REQUIRED -> deadline
        self._pending_sync: set[str] = set()  # wire members yet to send SyncGroup this generation
        self._sync_deadline = 0.0
        self.cv = threading.Condition()

    def assignment_of(self, member_id: str) -> tuple[int, tuple[TopicPartition, ...]]:
        with self.cv:
            return self.generation, self._member(member_id).assignment

    def describe(self) -> GroupDescription:
        """Kafka's DescribeGroups view: metadata and assignments only while Stable."""
        with self.cv:
            stable = self.state == GroupState.STABLE
            members = tuple(
                MemberDescription(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.host,
                    m.metadata(self.protocol, self.generation) if stable else b"",
                    m.assignment_bytes if stable else b"",
                )
                for m in self.members.values()
            )
            protocol = (self.protocol or "") if stable else ""
            return GroupDescription(self.group_id, self.state, self.protocol_type or "", protocol, members)

    def _member(self, member_id: str) -> Member:
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r} (expired or left)")
        return member

    def _checked_member(self, member_id: str, group_instance_id: str | None) -> Member:
        if group_instance_id is not None and self._static.get(group_instance_id, member_id) != member_id:
            raise FencedInstanceError(f"group.instance.id {group_instance_id!r} is now used by another member")
        return self._member(member_id)

    def _remove(self, member_id: str, reason: str) -> None:
        member = self.members.pop(member_id)
        if member.group_instance_id is not None and self._static.get(member.group_instance_id) == member_id:
            del self._static[member.group_instance_id]
        gone = UnknownMemberError(f"member {member_id!r} was removed from group {self.group_id!r}: {reason}")
        answer(member.join_waiter, error=gone)
        answer(member.sync_waiter, error=gone)
        self._pending_sync.discard(member_id)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.PREPARING_REBALANCE):
            self._begin_rebalance(reason)

    def _rebalance_timeout(self) -> float:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0) / 1000

    def rebalance_timeout_s(self) -> float:
        """The longest a rebalance of this group may take (its members' largest timeout)."""
        with self.cv:
            return self._rebalance_timeout()

    # the state machine ------------------------------------------------------------------
    def _set_state(self, state: GroupState) -> None:
        if self.state not in VALID_PREVIOUS[state]:
            raise RuntimeError(f"group {self.group_id!r}: illegal transition {self.state} -> {state}")
        self.state = state

    def _begin_rebalance(self, reason: str) -> None:
        if self.state == GroupState.PREPARING_REBALANCE:
            self._reason += f"; {reason}"
            self.cv.notify_all()
            return
        if self.state == GroupState.COMPLETING_REBALANCE:
            for member in self.members.values():
                answer(member.sync_waiter, error=RebalanceInProgressError(f"group {self.group_id!r}: {reason}"))
                member.sync_waiter = None
        self._set_state(GroupState.PREPARING_REBALANCE)
        self._rebalance_started = self._clock()
        self._reason = reason
        self._initial_phase = False
        self._not_before = 0.0
        self._pending_sync.clear()
        for member in self.members.values():
            member.joined_generation = -1
        self.cv.notify_all()
