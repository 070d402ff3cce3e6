"""JoinGroup and SyncGroup: how members enter a generation, embedded or over the wire.

:class:`JoinSyncGroup` admits new members (asking wire clients to come back with a member
id first, as Kafka does), lets static members take their old identity back, starts a
rebalance when membership or a subscription changes, and parks wire requests as futures
that :mod:`.rebalance` resolves when the generation opens and the assignment is in.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

from streamlab.errors import (
    FencedInstanceError,
    GroupError,
    IllegalGenerationError,
    InconsistentProtocolError,
    RebalanceInProgressError,
    UnknownMemberError,
)
from streamlab.groups.assignors import choose_protocol
from streamlab.groups.consumer_protocol import ConsumerProtocolError, decode_subscription
from streamlab.groups.group_core import answer
from streamlab.groups.rebalance import RebalancingGroup
from streamlab.groups.state import GroupState, JoinRequest, JoinResult, Member, MemberIdRequiredError, SyncResult


def _subscribed_topics(protocols: Sequence[tuple[str, bytes]]) -> tuple[str, ...]:
    """The topics of the first protocol whose metadata is a consumer subscription."""
    for _, metadata in protocols:
        try:
            return decode_subscription(metadata).topics
        except ConsumerProtocolError:
            continue
    return ()


class JoinSyncGroup(RebalancingGroup):
    """The JoinGroup/SyncGroup layer of :class:`~streamlab.groups.group.Group`."""

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
            return self._join(member_id or "", request, tuple(topics), external=False, require_known=False)

    def join_wire(self, member_id: str, request: JoinRequest, *, require_known_member_id: bool) -> Future[JoinResult]:
        """Kafka's JoinGroup. The future resolves when the next generation opens (or with
        the error: :class:`MemberIdRequiredError`, :class:`UnknownMemberError`, ...)."""
        waiter: Future[JoinResult] = Future()
        with self.cv:
            try:
                self._join(
                    member_id, request, _subscribed_topics(request.protocols), external=True,
                    require_known=require_known_member_id, waiter=waiter,
                )  # fmt: skip
            except GroupError as exc:
                answer(waiter, error=exc)
        return waiter

    def _join(
        self,
        member_id: str,
        request: JoinRequest,
        topics: tuple[str, ...],
        *,
        external: bool,
        require_known: bool,
        waiter: Future[JoinResult] | None = None,
    ) -> str:
        names = tuple(name for name, _ in request.protocols)
        if not names or not request.protocol_type:
            raise InconsistentProtocolError("a member must name a protocol type and at least one protocol")
        others = [m for m in self.members.values() if m.member_id != member_id]
        if others:
            if request.protocol_type != self.protocol_type:
                raise InconsistentProtocolError(
                    f"group {self.group_id!r} has protocol type {self.protocol_type!r}, not {request.protocol_type!r}"
                )
            common = set(others[0].protocols).intersection(*(m.protocols for m in others[1:]))
            if not set(names) & common:
                raise InconsistentProtocolError(
                    f"group {self.group_id!r} uses {self.protocol or sorted(others[0].protocols)!r}; "
                    f"this member supports only {list(names)}"
                )
        instance = request.group_instance_id
        if not member_id:
            if instance is not None and instance in self._static:
                return self._replace_static(instance, request, topics, external, waiter)
            new_id = f"{instance or request.client_id}-{uuid.uuid4()}"
            if require_known and instance is None:
                self._pending[new_id] = self._clock() + request.session_timeout_ms / 1000
                raise MemberIdRequiredError(new_id)
            return self._add(new_id, request, topics, external, waiter)
        if instance is not None and self._static.get(instance, member_id) != member_id:
            raise FencedInstanceError(f"group.instance.id {instance!r} is now used by another member")
        member = self.members.get(member_id)
        if member is None:
            if self._pending.pop(member_id, None) is not None or not external:
                return self._add(member_id, request, topics, external, waiter)
            raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r} (expired or left)")
        return self._rejoin(member, request, topics, waiter)

    def _add(
        self,
        member_id: str,
        request: JoinRequest,
        topics: tuple[str, ...],
        external: bool,
        waiter: Future[JoinResult] | None,
    ) -> str:
        now = self._clock()
        member = Member(member_id, request.client_id, request.host, topics, (), 0, 0, request.group_instance_id)
        self._update(member, request, topics, external)
        member.last_heartbeat = member.last_poll = now
        if not self.members:
            self.protocol_type = request.protocol_type
        self.members[member_id] = member
        if member.group_instance_id is not None:
            self._static[member.group_instance_id] = member_id
        if self.leader is None:
            self.leader = member_id
        was_empty = self.state == GroupState.EMPTY
        self._begin_rebalance(self._why(f"member {member_id} joined", request))
        if was_empty and external and self._initial_delay > 0:
            self._initial_phase = True
        if self._initial_phase:  # each new member may bring more: wait a little longer
            limit = self._rebalance_started + self._rebalance_timeout()
            self._not_before = min(now + self._initial_delay, limit)
        self._mark_joined(member, waiter)
        self._maybe_complete()
        return member_id

    def _replace_static(
        self,
        instance: str,
        request: JoinRequest,
        topics: tuple[str, ...],
        external: bool,
        waiter: Future[JoinResult] | None,
    ) -> str:
        """A static member restarted: it takes over its old identity, fencing the old id."""
        old_id = self._static[instance]
        member = self.members.pop(old_id)
        fenced = FencedInstanceError(f"group.instance.id {instance!r} rejoined as a new member")
        answer(member.join_waiter, error=fenced)
        answer(member.sync_waiter, error=fenced)
        member.join_waiter = member.sync_waiter = None
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
        self._update(member, request, topics, external)
        if self.state == GroupState.STABLE:
            if choose_protocol([m.protocols for m in self.members.values()]) == self.protocol:
                answer(waiter, self._join_result(member, skip_assignment=new_id == self.leader))
                return new_id
            self._begin_rebalance(f"static member {instance} rejoined with other protocols")
        elif self.state == GroupState.COMPLETING_REBALANCE:
            self._begin_rebalance(f"static member {instance} rejoined while the assignment was pending")
        self._mark_joined(member, waiter)
        self._maybe_complete()
        return new_id

    def _rejoin(
        self, member: Member, request: JoinRequest, topics: tuple[str, ...], waiter: Future[JoinResult] | None
    ) -> str:
        member.last_heartbeat = member.last_poll = self._clock()
        if member.external:
            same = member.protocol_metadata == dict(request.protocols) and list(member.protocol_metadata) == [
                name for name, _ in request.protocols
            ]
        else:
            same = member.topics == topics and member.protocols == tuple(n for n, _ in request.protocols)
        if self.state == GroupState.STABLE and same and not (member.external and member.member_id == self.leader):
            answer(waiter, self._join_result(member))  # nothing changed: here is the current generation
            return member.member_id
        if self.state == GroupState.COMPLETING_REBALANCE and same:
            answer(waiter, self._join_result(member))  # it missed our answer: answer again
            return member.member_id
        subscription_changed = member.topics != topics
        self._update(member, request, topics, member.external)
        if self.state != GroupState.PREPARING_REBALANCE:
            what = "changed subscription" if subscription_changed else "rejoined"
            self._begin_rebalance(self._why(f"member {member.member_id} {what}", request))
        self._mark_joined(member, waiter)
        self._maybe_complete()
        return member.member_id

    @staticmethod
    def _update(member: Member, request: JoinRequest, topics: tuple[str, ...], external: bool) -> None:
        member.client_id, member.host = request.client_id, request.host
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.protocols = tuple(name for name, _ in request.protocols)
        member.protocol_type = request.protocol_type
        member.topics = topics
        member.external = external
        member.protocol_metadata = dict(request.protocols) if external else {}

    @staticmethod
    def _why(reason: str, request: JoinRequest) -> str:
        return f"{reason} ({request.reason})" if request.reason else reason

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
                if (protocol_type is not None and protocol_type != self.protocol_type) or (
                    protocol_name is not None and protocol_name != self.protocol
                ):
                    raise InconsistentProtocolError(
                        f"group {self.group_id!r} runs {self.protocol_type}/{self.protocol}, "
                        f"not {protocol_type}/{protocol_name}"
                    )
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
                        self._install_from_leader(assignments)
                else:
                    raise UnknownMemberError(f"group {self.group_id!r} is {self.state}")
            except GroupError as exc:
                answer(waiter, error=exc)
        return waiter
