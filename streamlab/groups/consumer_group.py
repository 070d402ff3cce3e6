"""Consumer groups of the KIP-848 protocol (``group.protocol=consumer``), beside classic ones.

There is no join/sync barrier: each member sends ConsumerGroupHeartbeat on its own and the
coordinator moves the group forward one member at a time, with three epochs:

``group epoch``       bumped whenever what the assignment depends on changes: a member
                      joins, leaves or is fenced, a subscription or the preferred assignor
                      changes, a subscribed topic gains partitions (or a regex matches a
                      new topic)
``assignment epoch``  the group epoch the *target assignment* was computed for; the
                      server-side assignor (:mod:`.server_assignors`) recomputes it as soon
                      as the group epoch moves
``member epoch``      per member: the target epoch its current assignment belongs to

Each member reconciles towards its target as Kafka's ``CurrentAssignmentBuilder`` does.
A member whose target takes partitions away is asked to revoke them first and keeps its
epoch (state ``unrevoked_partitions``) until a heartbeat shows it no longer owns them, or
its rebalance timeout fences it. A partition it is to receive that another member still
owns (assigned, or pending revocation) is held back (``unreleased_partitions``) and handed
over on a later heartbeat, once released. So a partition is never owned by two members
at once.

A member that stops heartbeating for the session timeout (``group.consumer.session.timeout.ms``)
is removed and its partitions go to the others. A heartbeat with an epoch the member does
not have is fenced (FENCED_MEMBER_EPOCH), unless it is the epoch before, with owned
partitions the member still has (a lost response); a member the group does not know gets
UNKNOWN_MEMBER_ID. Either way the client rejoins with epoch 0. Static members (instance
id) leave with epoch -2, keep their assignment for the session timeout, and a member that
rejoins with the same instance id takes over its epoch and partitions.

Offset commits and fetches by members carry the member epoch, which must be the member's
current one (STALE_MEMBER_EPOCH otherwise). Ownership changes go to the same durable
history as classic generations (``group_events``), with the member epoch as generation.

The group's vocabulary (members, heartbeat messages, settings, descriptions and the
durable form of a member) is :mod:`.consumer_member`. This module holds no I/O and takes
a clock, so tests drive it directly; the broker layer (:mod:`streamlab.broker.consumer_groups`)
gives it partition counts and the recorder, and expiry is lazy: every call into a group
first expires what ran out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streamlab.errors import (
    FencedInstanceError,
    FencedMemberEpochError,
    InvalidHeartbeatError,
    StaleMemberEpochError,
    UnknownMemberError,
    UnreleasedInstanceIdError,
    UnsupportedAssignorError,
)
from streamlab.groups.consumer_member import (
    JOIN,
    LEAVE,
    LEAVE_STATIC,
    ConsumerGroupConfig,
    ConsumerGroupDescription,
    ConsumerGroupState,
    ConsumerMember,
    ConsumerMemberDescription,
    HeartbeatRequest,
    HeartbeatResult,
    MemberState,
    compile_regex,
    member_doc,
    member_from_doc,
    partition_pairs,
    partitions_from_pairs,
    sorted_partitions,
)
from streamlab.groups.history import now_ms
from streamlab.groups.server_assignors import DEFAULT_ASSIGNOR, SERVER_ASSIGNORS, Target
from streamlab.groups.state import GroupEvent
from streamlab.model.types import TopicPartition

Recorder = Callable[[str, list[GroupEvent]], None]
Saver = Callable[["ConsumerGroup"], None]
PartitionCounter = Callable[[Sequence[str]], dict[str, int]]
TopicLister = Callable[[], Sequence[str]]
Clock = Callable[[], float]


@dataclass(slots=True)
class ConsumerGroup:
    """One consumer-protocol group. Every public method takes :attr:`lock`."""

    group_id: str
    partitions_of: PartitionCounter
    topic_names: TopicLister
    record: Recorder
    config: ConsumerGroupConfig = field(default_factory=ConsumerGroupConfig)
    clock: Clock = time.monotonic
    epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    target: Target = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Called (under the lock) after every heartbeat and expiry: the broker layer writes the
    # group's snapshot() down when it changed, before the heartbeat is answered.
    save: Saver = lambda group: None
    _static: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    _owners: dict[TopicPartition, str] = field(default_factory=dict)  # partition -> member owning it
    _metadata: dict[str, int] = field(default_factory=dict)  # subscribed topic -> partitions, at the last bump
    _reason: str = ""

    # looking --------------------------------------------------------------------------------
    @property
    def state(self) -> ConsumerGroupState:
        with self.lock:
            if not self.members:
                return ConsumerGroupState.EMPTY
            if self.assignment_epoch != self.epoch:
                return ConsumerGroupState.ASSIGNING
            if any(m.epoch != self.assignment_epoch or m.state != MemberState.STABLE for m in self.members.values()):
                return ConsumerGroupState.RECONCILING
            return ConsumerGroupState.STABLE

    def assignor(self) -> str:
        """The most preferred assignor among the members (ties: by name), else the default."""
        with self.lock:
            votes: dict[str, int] = {}
            for m in self.members.values():
                if m.server_assignor:
                    votes[m.server_assignor] = votes.get(m.server_assignor, 0) + 1
            return min(votes, key=lambda n: (-votes[n], n)) if votes else DEFAULT_ASSIGNOR

    def describe(self) -> ConsumerGroupDescription:
        with self.lock:
            self.expire()
            members = tuple(
                ConsumerMemberDescription(
                    m.member_id,
                    m.instance_id,
                    m.rack_id,
                    m.client_id,
                    m.host,
                    m.epoch,
                    m.state,
                    tuple(sorted(m.topics)),
                    m.regex,
                    sorted_partitions(m.assigned),
                    sorted_partitions(m.pending_revocation),
                    sorted_partitions(self.target.get(m.member_id, frozenset())),
                )
                for m in self.members.values()
            )
            return ConsumerGroupDescription(
                self.group_id, self.state, self.epoch, self.assignment_epoch, self.assignor(), members
            )

    # the heartbeat ------------------------------------------------------------------------------
    def heartbeat(self, req: HeartbeatRequest) -> HeartbeatResult:
        """Kafka's ConsumerGroupHeartbeat for one member (see the module docstring)."""
        if req.server_assignor is not None and req.server_assignor not in SERVER_ASSIGNORS:
            raise UnsupportedAssignorError(
                f"server assignor {req.server_assignor!r} is not one of {sorted(SERVER_ASSIGNORS)}"
            )
        if req.regex is not None:
            compile_regex(req.regex)
        with self.lock:
            now = self.clock()
            self.expire()
            if req.epoch in (LEAVE, LEAVE_STATIC):
                left = self._leave(req)
                self.save(self)
                return left
            member = self._join(req, now) if req.epoch == JOIN else self._existing(req)
            before = member.assigned
            member.last_heartbeat = now
            self._update_subscription(member, req)
            self._check_metadata()
            if self.epoch != self.assignment_epoch:
                self._compute_target()
            self._reconcile(member, req.owned, now)
            full = (
                req.rebalance_timeout_ms != -1
                and (req.topics is not None or req.regex is not None)
                and (req.owned is not None)
            )
            changed = member.assigned != before
            assignment = member.assigned if req.epoch == JOIN or full or changed else None
            self.save(self)
            return HeartbeatResult(member.member_id, member.epoch, self.config.heartbeat_interval_ms, assignment)

    def _join(self, req: HeartbeatRequest, now: float) -> ConsumerMember:
        if req.rebalance_timeout_ms == -1:
            raise InvalidHeartbeatError("RebalanceTimeoutMs must be provided in first request")
        if req.owned:
            raise InvalidHeartbeatError("TopicPartitions must be empty when (re-)joining")
        if not req.topics and not req.regex:
            raise InvalidHeartbeatError("SubscribedTopicNames or SubscribedTopicRegex must be set in first request")
        if req.instance_id is not None:
            current = self._static.get(req.instance_id)
            if current is not None and current != req.member_id:
                old = self.members.get(current)
                if old is not None and old.epoch != LEAVE_STATIC:
                    raise UnreleasedInstanceIdError(
                        f"instance id {req.instance_id!r} is used by member {current!r}, which has not left"
                    )
                if old is not None:  # a static member back: it takes over its epoch and partitions
                    del self.members[current]
                    member = replace(old, member_id=req.member_id, client_id=req.client_id, host=req.host,
                                     epoch=old.previous_epoch, last_heartbeat=now)  # fmt: skip
                    self.members[req.member_id] = member
                    self._static[req.instance_id] = req.member_id
                    for tp in member.owned:
                        self._owners[tp] = req.member_id
                    if current in self.target:
                        self.target[req.member_id] = self.target.pop(current)
                    return member
        if req.member_id in self.members:  # rejoining under the same id: start over
            self._remove(req.member_id, f"member {req.member_id} rejoined with epoch 0", bump=False)
        member = ConsumerMember(req.member_id, req.client_id, req.host, instance_id=req.instance_id,
                                last_heartbeat=now, rebalance_timeout_ms=req.rebalance_timeout_ms)  # fmt: skip
        self.members[req.member_id] = member
        if req.instance_id is not None:
            self._static[req.instance_id] = req.member_id
        self._bump(f"member {req.member_id} joined")
        return member

    def _existing(self, req: HeartbeatRequest) -> ConsumerMember:
        member = self.members.get(req.member_id)
        if member is None or member.epoch == LEAVE_STATIC:
            raise UnknownMemberError(f"member {req.member_id!r} is not in group {self.group_id!r} (expired or left)")
        if req.instance_id is not None and self._static.get(req.instance_id) != req.member_id:
            raise FencedInstanceError(f"instance id {req.instance_id!r} is now used by another member")
        if req.epoch > member.epoch:
            raise FencedMemberEpochError(f"member epoch {req.epoch} is ahead of the member's epoch {member.epoch}")
        if req.epoch < member.epoch and not (
            req.epoch == member.previous_epoch and req.owned is not None and req.owned <= member.assigned
        ):
            raise FencedMemberEpochError(f"member epoch {req.epoch} is behind the member's epoch {member.epoch}")
        return member

    def _leave(self, req: HeartbeatRequest) -> HeartbeatResult:
        member_id = req.member_id
        if req.instance_id is not None and req.instance_id in self._static:
            member_id = self._static[req.instance_id]
        member = self.members.get(member_id)
        if member is not None:
            if req.epoch == LEAVE_STATIC and member.instance_id is not None:
                member.previous_epoch, member.epoch = member.epoch, LEAVE_STATIC
            else:
                self._remove(member_id, f"member {member_id} left the group")
        return HeartbeatResult(req.member_id, req.epoch, self.config.heartbeat_interval_ms, None)

    def _update_subscription(self, member: ConsumerMember, req: HeartbeatRequest) -> None:
        changed = False
        if req.topics is not None and frozenset(req.topics) != member.topics:
            member.topics, changed = frozenset(req.topics), True
        if req.regex is not None and (req.regex or None) != member.regex:
            member.regex, changed = req.regex or None, True
        if req.server_assignor is not None and req.server_assignor != member.server_assignor:
            member.server_assignor, changed = req.server_assignor, True
        if req.rebalance_timeout_ms > 0:
            member.rebalance_timeout_ms = req.rebalance_timeout_ms
        if req.rack_id is not None:
            member.rack_id = req.rack_id
        if changed and self.epoch == self.assignment_epoch:  # (a member that just joined bumped already)
            self._bump(f"member {member.member_id} changed its subscription")

    # the group epoch and the target -------------------------------------------------------------
    def _subscribed(self, member: ConsumerMember, topics: Sequence[str]) -> frozenset[str]:
        found = set(member.topics)
        if member.regex:
            pattern = compile_regex(member.regex)
            found.update(t for t in topics if pattern.fullmatch(t))
        return frozenset(found)

    def _subscriptions(self) -> dict[str, frozenset[str]]:
        names = list(self.topic_names()) if any(m.regex for m in self.members.values()) else []
        return {m.member_id: self._subscribed(m, names) for m in self.members.values()}

    def _bump(self, reason: str) -> None:
        self.epoch += 1
        self._reason = reason

    def _check_metadata(self) -> None:
        """Bump the group epoch if a subscribed topic gained partitions or a regex matches
        other topics than at the last bump."""
        if self.epoch != self.assignment_epoch:
            return  # a new target is due anyway, computed with the metadata of now
        subs = self._subscriptions()
        if self.partitions_of(sorted({t for topics in subs.values() for t in topics})) != self._metadata:
            self._bump("subscribed topics or their partitions changed")

    def _compute_target(self) -> None:
        subs = self._subscriptions()
        self._metadata = self.partitions_of(sorted({t for topics in subs.values() for t in topics}))
        self.target = SERVER_ASSIGNORS[self.assignor()](subs, self._metadata, self.target)
        self.assignment_epoch = self.epoch

    # reconciliation (Kafka's CurrentAssignmentBuilder) --------------------------------------------
    def _reconcile(self, member: ConsumerMember, owned: frozenset[TopicPartition] | None, now: float) -> None:
        if member.state == MemberState.STABLE and member.epoch == self.assignment_epoch:
            return
        if member.state == MemberState.UNREVOKED_PARTITIONS and _still_owns(owned, member.pending_revocation):
            return
        self._next_assignment(member, owned, now)

    def _next_assignment(self, member: ConsumerMember, owned: frozenset[TopicPartition] | None, now: float) -> None:
        target = self.target.get(member.member_id, frozenset())
        kept = member.assigned & target
        revoke = member.assigned - target
        pending = target - kept
        free = frozenset(tp for tp in pending if self._owners.get(tp, member.member_id) == member.member_id)
        unreleased = len(free) < len(pending)
        before = member.owned
        if revoke and _still_owns(owned, revoke):
            # Revoke first; the member stays at its epoch until it shows it has.
            member.state, member.assigned, member.pending_revocation = MemberState.UNREVOKED_PARTITIONS, kept, revoke
            member.revoke_deadline = now + member.rebalance_timeout_ms / 1000
        else:
            member.previous_epoch, member.epoch = member.epoch, self.assignment_epoch
            member.assigned, member.pending_revocation = kept | free, frozenset()
            member.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
            member.revoke_deadline = None
        self._owned_changed(member, before)

    def _owned_changed(self, member: ConsumerMember, before: frozenset[TopicPartition]) -> None:
        after = member.owned
        for tp in before - after:
            if self._owners.get(tp) == member.member_id:
                del self._owners[tp]
        for tp in after - before:
            self._owners[tp] = member.member_id
        ms, epoch = now_ms(), member.epoch
        events = [GroupEvent(epoch, ms, self._reason, member.member_id, tp.topic, tp.partition, "revoked")
                  for tp in sorted_partitions(before - after)]  # fmt: skip
        events += [GroupEvent(epoch, ms, self._reason, member.member_id, tp.topic, tp.partition, "assigned")
                   for tp in sorted_partitions(after - before)]  # fmt: skip
        if events:
            self.record(self.group_id, events)

    # leaving, expiry -----------------------------------------------------------------------------
    def _remove(self, member_id: str, reason: str, *, bump: bool = True) -> None:
        member = self.members.pop(member_id)
        if member.instance_id is not None and self._static.get(member.instance_id) == member_id:
            del self._static[member.instance_id]
        self.target.pop(member_id, None)
        before = member.owned
        member.assigned = member.pending_revocation = frozenset()
        self._reason = reason
        self._owned_changed(member, before)
        if bump:
            self._bump(reason)
            if self.members:
                self._compute_target()

    def expire(self) -> None:
        """Remove members whose session ran out, or that did not revoke within their
        rebalance timeout; notice partition changes of subscribed topics."""
        with self.lock:
            now = self.clock()
            session = self.config.session_timeout_ms / 1000
            for member in list(self.members.values()):
                if now - member.last_heartbeat > session:
                    self._remove(member.member_id, f"member {member.member_id} timed out (session timeout)")
                elif member.revoke_deadline is not None and now > member.revoke_deadline:
                    self._remove(member.member_id,
                                 f"member {member.member_id} did not revoke its partitions within its rebalance "
                                 "timeout")  # fmt: skip
            if self.members:
                self._check_metadata()
                if self.epoch != self.assignment_epoch:
                    self._compute_target()
            self.save(self)

    # offsets --------------------------------------------------------------------------------------
    def check_member_epoch(self, member_id: str | None, epoch: int, *, what: str = "commit") -> None:
        """Kafka's OffsetCommit/OffsetFetch validation for consumer groups: without a member
        (epoch < 0) only an empty group may be written to (admin tools); a member must be
        known and name its current epoch. Hold :attr:`lock` across the check and the write."""
        with self.lock:
            self.expire()
            if epoch < 0 and not member_id:
                if self.members and what == "commit":
                    raise UnknownMemberError(f"group {self.group_id!r} has members: only they may commit")
                return
            member = self.members.get(member_id or "")
            if member is None:
                raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r}")
            if epoch != member.epoch:
                raise StaleMemberEpochError(
                    f"{what} with member epoch {epoch}; member {member_id!r} is at epoch {member.epoch}"
                )

    # durable state ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What Kafka keeps of a consumer group in ``__consumer_offsets`` (group epoch, each
        member's subscription and current assignment, the target assignment), as plain
        JSON values; liveness (heartbeat times) is not part of it."""
        with self.lock:
            return {
                "epoch": self.epoch,
                "assignment_epoch": self.assignment_epoch,
                "metadata": dict(sorted(self._metadata.items())),
                "target": {m: partition_pairs(tps) for m, tps in sorted(self.target.items())},
                "members": [member_doc(m) for m in self.members.values()],
            }

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Take back a :meth:`snapshot` (a broker reopening): members keep their ids, epochs
        and partitions, and have a whole session timeout from now to heartbeat again; a
        revocation still pending gets its whole rebalance timeout."""
        with self.lock:
            now = self.clock()
            self.epoch, self.assignment_epoch = int(doc["epoch"]), int(doc["assignment_epoch"])
            self._metadata = {str(t): int(n) for t, n in doc["metadata"].items()}
            self.target = {m: partitions_from_pairs(pairs) for m, pairs in doc["target"].items()}
            for d in doc["members"]:
                member = member_from_doc(d, now=now)
                self.members[member.member_id] = member
                if member.instance_id is not None:
                    self._static[member.instance_id] = member.member_id
                for tp in member.owned:
                    self._owners[tp] = member.member_id
            self._reason = "the broker restarted"

    def remove_members(self, member_ids: Sequence[str], reason: str) -> None:
        """Take members out as if their sessions had ended (members that cannot come back)."""
        with self.lock:
            for member_id in member_ids:
                if member_id in self.members:
                    self._remove(member_id, reason)
            self.save(self)

    def owners(self) -> Mapping[TopicPartition, str]:
        with self.lock:
            return dict(self._owners)


def _still_owns(owned: frozenset[TopicPartition] | None, partitions: frozenset[TopicPartition]) -> bool:
    """Whether the member still owns any of ``partitions``; unknown (not sent) counts as yes."""
    return owned is None or bool(owned & partitions)
