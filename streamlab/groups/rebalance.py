"""Completing a rebalance: opening a generation and handing out the assignment.

Once every member has (re)joined, :class:`RebalancingGroup` opens the generation (leader,
protocol), answers the parked JoinGroup requests, and installs the assignment: computed
here when the leader is an embedded member, decoded from the leader's SyncGroup when it
is a wire client. Eager assignors revoke everything up front; ``cooperative-sticky``
revokes only what moves and asks for a follow-up rebalance to hand it out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streamlab.groups.assignors import Subscription, assign, choose_protocol, cooperative_assignment
from streamlab.groups.consumer_protocol import (
    ConsumerProtocolError,
    decode_assignment,
    decode_subscription,
    encode_assignment,
)
from streamlab.groups.group_core import GroupCore, answer
from streamlab.groups.history import ownership_changes, revocations
from streamlab.groups.state import COOPERATIVE, GroupState, JoinedMember, JoinResult, Member, SyncResult
from streamlab.model.types import TopicPartition


class RebalancingGroup(GroupCore):
    """The layer of :class:`~streamlab.groups.group.Group` that ends rebalances; called
    with :attr:`cv` held."""

    def _maybe_complete(self) -> None:
        if self.state != GroupState.PREPARING_REBALANCE:
            return
        if self._pending or any(m.joined_generation != self.generation + 1 for m in self.members.values()):
            return
        if not self.members:
            self._finish_empty()
        elif self._clock() >= self._not_before:
            self._complete()

    def _finish_empty(self) -> None:
        last = self._last_assignment
        self.generation += 1
        self._set_state(GroupState.EMPTY)
        self.leader = self.protocol = None
        self._record(self.group_id, revocations(self.generation, self._reason, last))
        self._last_assignment = {}
        self.cv.notify_all()

    def _complete(self) -> None:
        self.generation += 1
        self.protocol = choose_protocol([m.protocols for m in self.members.values()])
        if self.leader not in self.members:
            self.leader = next(iter(self.members))
        self._set_state(GroupState.COMPLETING_REBALANCE)
        topics = sorted({t for m in self.members.values() for t in m.topics})
        self._known_partitions = self._partitions_of(topics)
        for member in self.members.values():
            member.assignment_bytes = b""
            answer(member.join_waiter, self._join_result(member))
            member.join_waiter = None
        self._pending_sync = {m.member_id for m in self.members.values() if m.external}
        self._sync_deadline = self._clock() + self._rebalance_timeout()
        if not self.members[self.leader or ""].external:
            self._install(self._compute_assignment(), None)
        self.cv.notify_all()

    def _subscription(self, member: Member) -> Subscription:
        topics, owned, generation = member.topics, member.assignment, self.generation - 1
        if member.external:
            try:
                sub = decode_subscription(member.protocol_metadata.get(self.protocol or "", b""))
                topics, owned, generation = sub.topics, sub.owned, sub.generation
            except ConsumerProtocolError:
                owned, generation = (), -1
        return Subscription(member.member_id, topics, owned, generation, member.group_instance_id)

    def _compute_assignment(self) -> dict[str, list[TopicPartition]]:
        """What the embedded leader's client would compute."""
        assert self.protocol is not None
        subs = [self._subscription(m) for m in self.members.values()]
        if self.protocol in COOPERATIVE:
            new = cooperative_assignment(subs, self._known_partitions)
            full = assign(self.protocol, subs, self._known_partitions)
            self._follow_up = sum(map(len, new.values())) != sum(map(len, full.values()))
        else:
            new = assign(self.protocol, subs, self._known_partitions)
            self._follow_up = False
        return new

    def _install_from_leader(self, assignments: Mapping[str, bytes]) -> None:
        decoded: dict[str, list[TopicPartition]] = {}
        for member_id in self.members:
            try:
                decoded[member_id] = list(decode_assignment(assignments.get(member_id, b"")))
            except ConsumerProtocolError:
                decoded[member_id] = []  # not a consumer-protocol group: nothing to record
        # The leader's client runs the follow-up of a cooperative rebalance for wire members;
        # an embedded member that gave partitions up asks for it through us.
        self._follow_up = self.protocol in COOPERATIVE and any(
            not m.external and set(m.assignment) - set(decoded[m.member_id]) for m in self.members.values()
        )
        self._install(decoded, assignments)

    def _install(self, new: Mapping[str, Sequence[TopicPartition]], raw: Mapping[str, bytes] | None) -> None:
        events = ownership_changes(self.generation, self._reason, self._last_assignment, new, self.members)
        for member_id, member in self.members.items():
            given = tuple(new.get(member_id, ()))
            member.assignment = given
            member.assignment_bytes = raw.get(member_id, b"") if raw is not None else encode_assignment(given)
        self._last_assignment = {m.member_id: m.assignment for m in self.members.values()}
        self._record(self.group_id, events)
        self._set_state(GroupState.STABLE)
        for member in self.members.values():
            answer(member.sync_waiter, self._sync_result(member))
            member.sync_waiter = None
        if self._follow_up:  # cooperative: hand out the partitions revoked this round
            self._begin_rebalance("cooperative follow-up: assign revoked partitions")
        self.cv.notify_all()

    def _join_result(self, member: Member, *, skip_assignment: bool = False) -> JoinResult:
        leader = member.member_id == self.leader
        members = (
            tuple(
                JoinedMember(m.member_id, m.group_instance_id, m.metadata(self.protocol, self.generation - 1))
                for m in self.members.values()
            )
            if leader
            else ()
        )
        return JoinResult(
            member.member_id, self.generation, self.protocol_type, self.protocol, self.leader or "", members,
            skip_assignment and leader,
        )  # fmt: skip

    def _sync_result(self, member: Member) -> SyncResult:
        return SyncResult(self.protocol_type, self.protocol, member.assignment_bytes)
