"""The group coordinator: Kafka's classic consumer-group state machine.

Members join with their subscription and the assignors they support; once every known
member has (re)joined, or the rebalance timeout has expelled the ones that did not, a new
generation opens: the first member to join leads, the protocol (assignor) all members
support is chosen, and the leader's assignment is distributed. In-process the leader's
assignment is computed here with the leader's chosen assignor, which is what the leader's
client would compute. Eager assignors revoke everything at the start of a rebalance;
``cooperative-sticky`` revokes only the partitions that move and hands them out in a
follow-up rebalance, so partitions that stay never stop.

Every generation's ownership changes are written to the catalog (``group_events``), so
the history survives restarts and can be drawn.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from streamlab.errors import (
    FencedInstanceError,
    IllegalGenerationError,
    InconsistentProtocolError,
    RebalanceInProgressError,
    UnknownMemberError,
)
from streamlab.groups.assignors import Subscription, assign, choose_protocol, cooperative_assignment
from streamlab.model.types import TopicPartition

COOPERATIVE = {"cooperative-sticky"}


class GroupState(StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True)
class Member:
    member_id: str
    client_id: str
    host: str
    topics: tuple[str, ...]
    protocols: tuple[str, ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    group_instance_id: str | None = None
    last_heartbeat: float = field(default_factory=time.monotonic)
    last_poll: float = field(default_factory=time.monotonic)
    joined_generation: int = -1  # generation whose rebalance this member has joined
    assignment: tuple[TopicPartition, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupEvent:
    generation: int
    time_ms: int
    reason: str
    member_id: str
    topic: str
    partition: int
    change: str  # "assigned", "revoked", "kept"


Recorder = Callable[[str, list[GroupEvent]], None]
PartitionCounter = Callable[[Sequence[str]], dict[str, int]]
_ids = itertools.count()


class Group:
    def __init__(self, group_id: str, partitions_of: PartitionCounter, record: Recorder) -> None:
        self.group_id = group_id
        self.state = GroupState.EMPTY
        self.generation = 0
        self.protocol: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        self._partitions_of = partitions_of
        self._record = record
        self._reason = ""
        self._rebalance_started = 0.0
        self._follow_up = False
        self._known_partitions: dict[str, int] = {}
        self._last_assignment: dict[str, tuple[TopicPartition, ...]] = {}
        self.cv = threading.Condition()

    # membership -------------------------------------------------------------------------
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
        """Join (or rejoin) the group; returns the member id. Starts a rebalance when the
        membership or a subscription changed."""
        with self.cv:
            if self.protocol is not None and not set(protocols) & self._common_protocols(exclude=member_id):
                raise InconsistentProtocolError(
                    f"group {self.group_id!r} uses {self.protocol!r}; this member supports only {list(protocols)}"
                )
            if group_instance_id is not None:
                static = next((m for m in self.members.values() if m.group_instance_id == group_instance_id), None)
                if static is not None and static.member_id != member_id:
                    # A restarted static member takes over its old identity without a rebalance.
                    del self.members[static.member_id]
                    static.member_id = member_id or f"{group_instance_id}-{uuid.uuid4().hex[:8]}"
                    static.last_heartbeat = static.last_poll = time.monotonic()
                    self.members[static.member_id] = static
                    if self.leader not in self.members:
                        self.leader = static.member_id
                    self.cv.notify_all()
                    return static.member_id
            if member_id is None or member_id not in self.members:
                member_id = member_id or f"{client_id}-{next(_ids)}-{uuid.uuid4().hex[:8]}"
                self.members[member_id] = Member(
                    member_id, client_id, host, tuple(topics), tuple(protocols), session_timeout_ms,
                    rebalance_timeout_ms, group_instance_id,
                )  # fmt: skip
                self._begin_rebalance(f"member {member_id} joined")
            else:
                member = self.members[member_id]
                if member.topics != tuple(topics):
                    member.topics = tuple(topics)
                    self._begin_rebalance(f"member {member_id} changed subscription")
            member = self.members[member_id]
            member.last_heartbeat = member.last_poll = time.monotonic()
            if self.state == GroupState.PREPARING_REBALANCE:
                member.joined_generation = self.generation + 1
            self._maybe_complete()
            return member_id

    def leave(self, member_id: str, reason: str = "left the group") -> None:
        with self.cv:
            if self.members.pop(member_id, None) is not None:
                self._begin_rebalance(f"member {member_id} {reason}")
                self._maybe_complete()

    def heartbeat(self, member_id: str, generation: int, *, polled: bool = False) -> None:
        """Keep ``member_id`` alive; raises when it must rejoin (as Kafka's Heartbeat does)."""
        with self.cv:
            member = self._member(member_id)
            member.last_heartbeat = time.monotonic()
            if polled:
                member.last_poll = member.last_heartbeat
            if self.state == GroupState.PREPARING_REBALANCE:
                raise RebalanceInProgressError(f"group {self.group_id!r} is rebalancing; rejoin")
            if generation != self.generation:
                raise IllegalGenerationError(
                    f"generation {generation} is not the group's current generation {self.generation}"
                )

    def check_commit(self, member_id: str | None, generation: int | None) -> None:
        """Commits from an old generation or an unknown member are rejected."""
        if member_id is None:
            return
        with self.cv:
            self._member(member_id)
            if self.state == GroupState.PREPARING_REBALANCE:
                raise RebalanceInProgressError(f"group {self.group_id!r} is rebalancing; commit after rejoining")
            if generation != self.generation:
                raise IllegalGenerationError(
                    f"commit from generation {generation} rejected: group {self.group_id!r} is at "
                    f"generation {self.generation}",
                )

    def assignment_of(self, member_id: str) -> tuple[int, tuple[TopicPartition, ...]]:
        with self.cv:
            return self.generation, self._member(member_id).assignment

    def _member(self, member_id: str) -> Member:
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r} (expired or left)")
        return member

    def _common_protocols(self, exclude: str | None = None) -> set[str]:
        sets = [set(m.protocols) for m in self.members.values() if m.member_id != exclude]
        return (
            set.intersection(*sets)
            if sets
            else {p for m in self.members.values() for p in m.protocols} or {self.protocol or ""}
        )

    # the state machine ------------------------------------------------------------------
    def _begin_rebalance(self, reason: str) -> None:
        if self.state != GroupState.PREPARING_REBALANCE:
            self.state = GroupState.PREPARING_REBALANCE
            self._rebalance_started = time.monotonic()
            self._reason = reason
            for member in self.members.values():
                member.joined_generation = -1
        else:
            self._reason += f"; {reason}"
        if not self.members:
            self._finish_empty()
        self.cv.notify_all()

    def _maybe_complete(self) -> None:
        if self.state != GroupState.PREPARING_REBALANCE:
            return
        if not self.members:
            self._finish_empty()
            return
        waiting = [m for m in self.members.values() if m.joined_generation != self.generation + 1]
        if waiting:
            return
        self._complete()

    def _finish_empty(self) -> None:
        old = {tp: m for m, tps in self._last_assignment.items() for tp in tps}
        self.generation += 1
        self.state = GroupState.EMPTY
        self.leader = self.protocol = None
        self._record(self.group_id, [
            GroupEvent(self.generation, _now_ms(), self._reason, owner, tp.topic, tp.partition, "revoked")
            for tp, owner in old.items()
        ])  # fmt: skip
        self._last_assignment = {}

    def _complete(self) -> None:
        self.state = GroupState.COMPLETING_REBALANCE
        self.protocol = choose_protocol([m.protocols for m in self.members.values()])
        self.generation += 1
        self.leader = next(iter(self.members))
        topics = sorted({t for m in self.members.values() for t in m.topics})
        self._known_partitions = self._partitions_of(topics)
        subs = [
            Subscription(m.member_id, m.topics, owned=m.assignment, generation=self.generation - 1,
                         group_instance_id=m.group_instance_id)
            for m in self.members.values()
        ]  # fmt: skip
        if self.protocol in COOPERATIVE:
            new = cooperative_assignment(subs, self._known_partitions)
            full = assign(self.protocol, subs, self._known_partitions)
            self._follow_up = sum(map(len, new.values())) != sum(map(len, full.values()))
        else:
            new = assign(self.protocol, subs, self._known_partitions)
            self._follow_up = False
        events: list[GroupEvent] = []
        now = _now_ms()
        previous = self._last_assignment
        for member_id, tps in previous.items():
            for tp in tps:
                if tp not in new.get(member_id, []):
                    events.append(GroupEvent(self.generation, now, self._reason, member_id, tp.topic, tp.partition,
                                             "revoked"))  # fmt: skip
        for member_id, given in new.items():
            for tp in given:
                change = "kept" if tp in previous.get(member_id, ()) else "assigned"
                events.append(GroupEvent(self.generation, now, self._reason, member_id, tp.topic, tp.partition, change))
            self.members[member_id].assignment = tuple(given)
        self._last_assignment = {m: tuple(t) for m, t in new.items()}
        self._record(self.group_id, events)
        self.state = GroupState.STABLE
        if self._follow_up:  # cooperative: hand out the partitions revoked this round
            self._begin_rebalance("cooperative follow-up: assign revoked partitions")
        self.cv.notify_all()

    def tick(self) -> None:
        """Expire members whose session or poll interval ran out; notice new partitions;
        finish a rebalance whose stragglers ran out of time."""
        with self.cv:
            now = time.monotonic()
            for member in list(self.members.values()):
                if now - member.last_heartbeat > member.session_timeout_ms / 1000:
                    del self.members[member.member_id]
                    self._begin_rebalance(f"member {member.member_id} timed out (session.timeout.ms)")
                elif now - member.last_poll > member.rebalance_timeout_ms / 1000:
                    del self.members[member.member_id]
                    self._begin_rebalance(f"member {member.member_id} left: max.poll.interval.ms exceeded")
            if self.state == GroupState.STABLE:
                topics = sorted({t for m in self.members.values() for t in m.topics})
                if self._partitions_of(topics) != self._known_partitions:
                    self._begin_rebalance("partitions added")
            if self.state == GroupState.PREPARING_REBALANCE and self.members:
                limit = max(m.rebalance_timeout_ms for m in self.members.values()) / 1000
                if now - self._rebalance_started > limit:
                    for member in [m for m in self.members.values() if m.joined_generation != self.generation + 1]:
                        del self.members[member.member_id]
                        self._reason += f"; member {member.member_id} did not rejoin in time"
                self._maybe_complete()


def _now_ms() -> int:
    return int(time.time() * 1000)


class GroupCoordinator:
    """All groups of one broker, and the thread that expires silent members."""

    def __init__(self, partitions_of: PartitionCounter, record: Recorder, *, tick_s: float = 0.05) -> None:
        self._groups: dict[str, Group] = {}
        self._lock = threading.Lock()
        self._partitions_of = partitions_of
        self._record = record
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(tick_s,), name="streamlab-groups", daemon=True)
        self._thread.start()

    def group(self, group_id: str) -> Group:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                group = self._groups[group_id] = Group(group_id, self._partitions_of, self._record)
            return group

    def groups(self) -> Mapping[str, Group]:
        with self._lock:
            return dict(self._groups)

    def _run(self, tick_s: float) -> None:
        while not self._stop.wait(tick_s):
            for group in list(self.groups().values()):
                group.tick()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


__all__ = ["FencedInstanceError", "Group", "GroupCoordinator", "GroupEvent", "GroupState", "Member"]
