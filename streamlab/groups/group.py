"""The classic consumer group (:class:`Group`): one object, one lock, Kafka's state machine.

A group holds its members, the generation and the bookkeeping of a rebalance in
progress. Members enter a generation with JoinGroup and SyncGroup (embedded members
through :meth:`Group.join`, wire clients through :meth:`Group.join_wire` and
:meth:`Group.sync_wire`, whose futures resolve when the generation opens): new wire
members are first asked to come back with a member id, static members take their old
identity back, and a change of membership or subscription starts a rebalance. Once
every member has rejoined, the generation opens (leader, protocol) and the assignment is
installed: computed here when the leader is an embedded member, decoded from the
leader's SyncGroup when it is a wire client. Eager assignors revoke everything up front;
``cooperative-sticky`` revokes only what moves and asks for a follow-up rebalance.
Heartbeat, LeaveGroup and the offset-commit check keep members in it, and
:meth:`Group.tick` enforces every timeout (session, poll interval, rejoin and SyncGroup
deadlines) so that each parked future resolves within the rebalance timeout.

This class is the state machine; around it are plain functions: the assignment decisions
in :mod:`.rebalance`, the ownership changes recorded in :mod:`.history`, what the group
refuses in :mod:`.request_checks`, members made and compared in :mod:`.members`, and its
answers (JoinGroup, DescribeGroups, resolving a parked request) in :mod:`.answers`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future

from streamlab.errors import (
    FencedInstanceError,
    GroupError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberError,
)
from streamlab.groups.answers import answer, describe_group, join_result
from streamlab.groups.assignors import choose_protocol
from streamlab.groups.history import ownership_changes, revocations
from streamlab.groups.members import Joining, let_go, new_member, out_of_time, unchanged, update_member, with_reason
from streamlab.groups.rebalance import (
    decoded_assignment,
    hand_out,
    leader_assignment,
    subscribed,
    subscribed_topics,
)
from streamlab.groups.request_checks import (
    check_commit_generation,
    check_not_fenced,
    check_protocols,
    check_sync_protocol,
    leaving_member,
)
from streamlab.groups.state import (
    VALID_PREVIOUS,
    GroupDescription,
    GroupEvent,
    GroupState,
    JoinRequest,
    JoinResult,
    Member,
    MemberIdRequiredError,
    SyncResult,
)
from streamlab.model.types import TopicPartition

Recorder = Callable[[str, list[GroupEvent]], None]
PartitionCounter = Callable[[Sequence[str]], dict[str, int]]
Clock = Callable[[], float]


class Group:
    """One classic group. Public methods take :attr:`cv`, private ones expect it held;
    the coordinator's thread calls :meth:`tick` a few times a second."""

    def __init__(
        self,
        group_id: str,
        partitions_of: PartitionCounter,
        record: Recorder,
        *,
        clock: Clock = time.monotonic,
        initial_rebalance_delay_ms: int = 0,
        generation: int = 0,
    ) -> None:
        self.group_id = group_id
        self.state = GroupState.EMPTY
        # Where the group's history left off (a broker that reopens continues it, as
        # Kafka's group metadata does): generations never repeat.
        self.generation = generation
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
            return describe_group(
                self.group_id, self.state, self.members.values(), generation=self.generation,
                protocol_type=self.protocol_type, protocol=self.protocol,
            )  # fmt: skip

    def _member(self, member_id: str) -> Member:
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r} (expired or left)")
        return member

    def _checked_member(self, member_id: str, group_instance_id: str | None) -> Member:
        check_not_fenced(self._static, group_instance_id, member_id)
        return self._member(member_id)

    def _remove(self, member_id: str, reason: str) -> None:
        member = self.members.pop(member_id)
        if member.group_instance_id is not None and self._static.get(member.group_instance_id) == member_id:
            del self._static[member.group_instance_id]
        let_go(member, UnknownMemberError(f"member {member_id!r} was removed from group {self.group_id!r}: {reason}"))
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

    # completing a rebalance ------------------------------------------------------------
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
        self._known_partitions = self._partitions_of(subscribed(self.members.values()))
        for member in self.members.values():
            member.assignment_bytes = b""
            answer(member.join_waiter, self._join_result(member))
            member.join_waiter = None
        self._pending_sync = {m.member_id for m in self.members.values() if m.external}
        self._sync_deadline = self._clock() + self._rebalance_timeout()
        if not self.members[self.leader or ""].external:
            assert self.protocol is not None
            assignment, self._follow_up = leader_assignment(
                self.protocol, self.members.values(), self.generation - 1, self._known_partitions
            )
            self._install(assignment, None)
        self.cv.notify_all()

    def _install(self, new: Mapping[str, Sequence[TopicPartition]], raw: Mapping[str, bytes] | None) -> None:
        events = ownership_changes(self.generation, self._reason, self._last_assignment, new, self.members)
        self._last_assignment = hand_out(self.members, new, raw)
        self._record(self.group_id, events)
        self._set_state(GroupState.STABLE)
        for member in self.members.values():
            answer(member.sync_waiter, self._sync_result(member))
            member.sync_waiter = None
        if self._follow_up:  # cooperative: hand out the partitions revoked this round
            self._begin_rebalance("cooperative follow-up: assign revoked partitions")
        self.cv.notify_all()

    def _join_result(self, member: Member, *, skip_assignment: bool = False) -> JoinResult:
        return join_result(
            member, self.members.values(), generation=self.generation, protocol_type=self.protocol_type,
            protocol=self.protocol, leader=self.leader, skip_assignment=skip_assignment,
        )  # fmt: skip

    def _sync_result(self, member: Member) -> SyncResult:
        return SyncResult(self.protocol_type, self.protocol, member.assignment_bytes)

    # joining ----------------------------------------------------------------------------
    def join(
        self,
        member_id: str | None,
        *,
        client_id: str,
        topics: Sequence[str],
        protocols: Sequence[str],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        group_instance_id: str | None = None,
        host: str = "localhost",
    ) -> str:
        """Join (or rejoin) an embedded member; returns its member id. Starts a rebalance
        when the membership or a subscription changed."""
        request = JoinRequest(
            client_id, host, session_timeout_ms, rebalance_timeout_ms, tuple((p, b"") for p in protocols),
            group_instance_id=group_instance_id,
        )  # fmt: skip
        with self.cv:
            return self._join(member_id or "", Joining(request, tuple(topics), external=False), require_known=False)

    def join_wire(self, member_id: str, request: JoinRequest, *, require_known_member_id: bool) -> Future[JoinResult]:
        """Kafka's JoinGroup. The future resolves when the next generation opens (or with
        the error: :class:`MemberIdRequiredError`, :class:`UnknownMemberError`, ...)."""
        waiter: Future[JoinResult] = Future()
        with self.cv:
            try:
                joining = Joining(request, subscribed_topics(request.protocols), external=True, waiter=waiter)
                self._join(member_id, joining, require_known=require_known_member_id)
            except GroupError as exc:
                answer(waiter, error=exc)
        return waiter

    def _join(self, member_id: str, joining: Joining, *, require_known: bool) -> str:
        request = joining.request
        others = [m for m in self.members.values() if m.member_id != member_id]
        check_protocols(self.group_id, self.protocol_type, self.protocol, others, request)
        instance = request.group_instance_id
        if not member_id:
            if instance is not None and instance in self._static:
                return self._replace_static(instance, joining)
            new_id = f"{instance or request.client_id}-{uuid.uuid4()}"
            if require_known and instance is None:
                self._pending[new_id] = self._clock() + request.session_timeout_ms / 1000
                raise MemberIdRequiredError(new_id)
            return self._add(new_id, joining)
        check_not_fenced(self._static, instance, member_id)
        member = self.members.get(member_id)
        if member is None:
            if self._pending.pop(member_id, None) is not None or not joining.external:
                return self._add(member_id, joining)
            raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r} (expired or left)")
        return self._rejoin(member, joining)

    def _add(self, member_id: str, joining: Joining) -> str:
        now = self._clock()
        member = new_member(member_id, joining, now)
        if not self.members:
            self.protocol_type = joining.request.protocol_type
        self.members[member_id] = member
        if member.group_instance_id is not None:
            self._static[member.group_instance_id] = member_id
        if self.leader is None:
            self.leader = member_id
        was_empty = self.state == GroupState.EMPTY
        self._begin_rebalance(with_reason(f"member {member_id} joined", joining.request))
        if was_empty and joining.external and self._initial_delay > 0:
            self._initial_phase = True
        if self._initial_phase:  # each new member may bring more: wait a little longer
            limit = self._rebalance_started + self._rebalance_timeout()
            self._not_before = min(now + self._initial_delay, limit)
        self._mark_joined(member, joining.waiter)
        self._maybe_complete()
        return member_id

    def _replace_static(self, instance: str, joining: Joining) -> str:
        """A static member restarted: it takes over its old identity, fencing the old id."""
        old_id = self._static[instance]
        member = self.members.pop(old_id)
        let_go(member, FencedInstanceError(f"group.instance.id {instance!r} rejoined as a new member"))
        new_id = f"{instance}-{uuid.uuid4()}"
        member.member_id = new_id
        self.members[new_id] = member
        self._static[instance] = new_id
        if self.leader == old_id:
            self.leader = new_id
        if old_id in self._pending_sync:
            self._pending_sync.discard(old_id)
            self._pending_sync.add(new_id)
        if old_id in self._last_assignment:
            self._last_assignment[new_id] = self._last_assignment.pop(old_id)
        member.last_heartbeat = member.last_poll = self._clock()
        update_member(member, joining.request, joining.topics, joining.external)
        if self.state == GroupState.STABLE:
            if choose_protocol([m.protocols for m in self.members.values()]) == self.protocol:
                answer(joining.waiter, self._join_result(member, skip_assignment=new_id == self.leader))
                return new_id
            self._begin_rebalance(f"static member {instance} rejoined with other protocols")
        elif self.state == GroupState.COMPLETING_REBALANCE:
            self._begin_rebalance(f"static member {instance} rejoined while the assignment was pending")
        self._mark_joined(member, joining.waiter)
        self._maybe_complete()
        return new_id

    def _rejoin(self, member: Member, joining: Joining) -> str:
        member.last_heartbeat = member.last_poll = self._clock()
        same = unchanged(member, joining)
        if self.state == GroupState.STABLE and same and not (member.external and member.member_id == self.leader):
            answer(joining.waiter, self._join_result(member))  # nothing changed: here is the current generation
            return member.member_id
        if self.state == GroupState.COMPLETING_REBALANCE and same:
            answer(joining.waiter, self._join_result(member))  # it missed our answer: answer again
            return member.member_id
        subscription_changed = member.topics != joining.topics
        update_member(member, joining.request, joining.topics, member.external)
        if self.state != GroupState.PREPARING_REBALANCE:
            what = "changed subscription" if subscription_changed else "rejoined"
            self._begin_rebalance(with_reason(f"member {member.member_id} {what}", joining.request))
        self._mark_joined(member, joining.waiter)
        self._maybe_complete()
        return member.member_id

    def _mark_joined(self, member: Member, waiter: Future[JoinResult] | None) -> None:
        if self.state == GroupState.PREPARING_REBALANCE:
            member.joined_generation = self.generation + 1
        if waiter is not None:
            if member.join_waiter is not waiter:
                answer(member.join_waiter, error=RebalanceInProgressError("superseded by a newer JoinGroup"))
            member.join_waiter = waiter

    # syncing ----------------------------------------------------------------------------
    def sync_wire(
        self,
        member_id: str,
        generation: int,
        assignments: Mapping[str, bytes],
        *,
        group_instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> Future[SyncResult]:
        """Kafka's SyncGroup: the leader's carries every member's assignment; each future
        resolves with that member's assignment once the leader's has arrived."""
        waiter: Future[SyncResult] = Future()
        with self.cv:
            try:
                member = self._checked_member(member_id, group_instance_id)
                if generation != self.generation:
                    raise IllegalGenerationError(f"generation {generation} is not the current {self.generation}")
                check_sync_protocol(self.group_id, (self.protocol_type, self.protocol), (protocol_type, protocol_name))
                if self.state == GroupState.PREPARING_REBALANCE:
                    raise RebalanceInProgressError(f"group {self.group_id!r} is rebalancing; rejoin")
                member.last_heartbeat = self._clock()
                self._pending_sync.discard(member_id)
                if self.state == GroupState.STABLE:
                    answer(waiter, self._sync_result(member))
                elif self.state == GroupState.COMPLETING_REBALANCE:
                    answer(member.sync_waiter, error=RebalanceInProgressError("superseded by a newer SyncGroup"))
                    member.sync_waiter = waiter
                    if member_id == self.leader:
                        decoded, self._follow_up = decoded_assignment(self.protocol, self.members.values(), assignments)
                        self._install(decoded, assignments)
                else:
                    raise UnknownMemberError(f"group {self.group_id!r} is {self.state}")
            except GroupError as exc:
                answer(waiter, error=exc)
        return waiter

    # heartbeats, leaving, commits -------------------------------------------------------
    def heartbeat(
        self, member_id: str, generation: int, *, polled: bool = False, group_instance_id: str | None = None
    ) -> None:
        """Keep ``member_id`` alive; raises when it must rejoin (as Kafka's Heartbeat does)."""
        with self.cv:
            member = self._checked_member(member_id, group_instance_id)
            member.last_heartbeat = self._clock()
            if polled or member.external:
                member.last_poll = member.last_heartbeat
            if generation != self.generation:
                raise IllegalGenerationError(
                    f"generation {generation} is not the group's current generation {self.generation}"
                )
            if self.state == GroupState.PREPARING_REBALANCE:
                raise RebalanceInProgressError(f"group {self.group_id!r} is rebalancing; rejoin")

    def leave(self, member_id: str, reason: str = "left the group") -> None:
        """An embedded member leaves; nothing happens if it is already gone."""
        with self.cv:
            if member_id in self.members:
                self._remove(member_id, f"member {member_id} {reason}")
                self._maybe_complete()

    def leave_wire(self, member_id: str, group_instance_id: str | None = None, reason: str | None = None) -> str:
        """Kafka's LeaveGroup for one member (a static one may be named by instance id
        alone); returns the member id that left."""
        with self.cv:
            if group_instance_id is not None:
                member_id = leaving_member(self._static, group_instance_id, member_id)
            elif self._pending.pop(member_id, None) is not None:
                self._maybe_complete()
                return member_id
            if member_id not in self.members:
                raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r} (expired or left)")
            why = f"member {member_id} left the group" + (f" ({reason})" if reason else "")
            self._remove(member_id, why)
            self._maybe_complete()
            return member_id

    def check_commit(self, member_id: str | None, generation: int | None, group_instance_id: str | None = None) -> None:
        """Kafka's offset-commit validation. A commit names a member and its generation,
        unless the group is empty (then anyone may commit, as admin tools do). Commits
        from an old generation, unknown or fenced members are rejected, and so are all
        commits while the assignment is being handed out; an embedded member whose
        generation is being replaced gets RebalanceInProgressError, as Kafka's client
        raises it (its wire counterpart gets ILLEGAL_GENERATION, as from Kafka's broker).
        Hold :attr:`cv` across the check and the write so the generation cannot move in between."""
        if member_id is None:
            return
        generation = -1 if generation is None else generation
        with self.cv:
            if generation >= 0 or member_id or group_instance_id is not None:
                member = self._checked_member(member_id, group_instance_id)
                check_commit_generation(self.group_id, member, generation, self.generation, self.state)
                member.last_heartbeat = self._clock()
            elif self.members:
                raise UnknownMemberError(f"group {self.group_id!r} has members: only they may commit")
            if self.state == GroupState.COMPLETING_REBALANCE:
                raise RebalanceInProgressError(f"group {self.group_id!r} is rebalancing; commit after rejoining")

    # timeouts ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Expire members whose session or poll interval ran out; notice new partitions;
        finish a rebalance whose stragglers ran out of time."""
        with self.cv:
            now = self._clock()
            for member_id, deadline in list(self._pending.items()):
                if now > deadline:
                    del self._pending[member_id]
            for member in list(self.members.values()):
                if member.awaiting():  # a request is parked with us: it is alive
                    member.last_heartbeat = member.last_poll = now
                elif (why := out_of_time(member, now)) is not None:
                    self._remove(member.member_id, why)
            stable = self.state == GroupState.STABLE
            if stable and self._partitions_of(subscribed(self.members.values())) != self._known_partitions:
                self._begin_rebalance("partitions added")
            if self._pending_sync and now > self._sync_deadline and self.state != GroupState.PREPARING_REBALANCE:
                for member_id in sorted(self._pending_sync):
                    self._remove(member_id, f"member {member_id} did not send SyncGroup in time")
            if (
                self.state == GroupState.PREPARING_REBALANCE
                and now - self._rebalance_started > self._rebalance_timeout()
            ):
                for member in [m for m in self.members.values() if m.joined_generation != self.generation + 1]:
                    self._remove(member.member_id, f"member {member.member_id} did not rejoin in time")
                self._pending.clear()
            self._maybe_complete()
