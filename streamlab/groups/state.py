"""The group coordinator's states and the values members exchange with it.

These are streamlab's types for Kafka's classic group protocol: what a member sends to
join (:class:`JoinRequest`), what it gets back (:class:`JoinResult`, :class:`SyncResult`),
what DescribeGroups shows (:class:`GroupDescription`), and one ownership change in the
durable rebalance history (:class:`GroupEvent`). Protocol metadata and assignments stay
the opaque bytes members send; :mod:`streamlab.groups.consumer_protocol` reads them.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum

from streamlab.errors import GroupError
from streamlab.groups.consumer_protocol import encode_subscription
from streamlab.model.types import TopicPartition

COOPERATIVE = {"cooperative-sticky"}
CONSUMER = "consumer"  # the protocol type of consumer groups


class GroupState(StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


# Kafka's ClassicGroupState: the states each state may be entered from.
VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset({GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY}),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}


class MemberIdRequiredError(GroupError):
    """JoinGroup v4+: a new member must rejoin with the member id this error carries."""

    kafka_code = 79  # MEMBER_ID_REQUIRED

    def __init__(self, member_id: str) -> None:
        super().__init__(f"rejoin with member id {member_id!r}")
        self.member_id = member_id


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A member's JoinGroup, in streamlab's types."""

    client_id: str
    host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: tuple[tuple[str, bytes], ...]  # (name, metadata) in the member's order of preference
    protocol_type: str = CONSUMER
    group_instance_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class JoinedMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes  # for the chosen protocol


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A JoinGroup answer; ``members`` is filled for the leader only."""

    member_id: str
    generation: int
    protocol_type: str | None
    protocol: str | None
    leader: str
    members: tuple[JoinedMember, ...] = ()
    skip_assignment: bool = False  # a static leader that rejoined: keep the assignment


@dataclass(frozen=True, slots=True)
class SyncResult:
    protocol_type: str | None
    protocol: str | None
    assignment: bytes


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: GroupState
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]


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
    external: bool = False  # a Kafka wire client: it, or its leader, assigns
    protocol_type: str = CONSUMER
    protocol_metadata: dict[str, bytes] = field(default_factory=dict)  # empty for embedded members
    assignment_bytes: bytes = b""
    join_waiter: Future[JoinResult] | None = None
    sync_waiter: Future[SyncResult] | None = None

    def awaiting(self) -> bool:
        return any(w is not None and not w.done() for w in (self.join_waiter, self.sync_waiter))

    def metadata(self, protocol: str | None, generation: int) -> bytes:
        if self.external:
            return self.protocol_metadata.get(protocol or "", b"")
        return encode_subscription(self.topics, self.assignment, generation)


@dataclass(frozen=True, slots=True)
class GroupEvent:
    generation: int
    time_ms: int
    reason: str
    member_id: str
    topic: str
    partition: int
    change: str  # "assigned", "revoked", "kept"


__all__ = [
    "CONSUMER",
    "COOPERATIVE",
    "VALID_PREVIOUS",
    "GroupDescription",
    "GroupEvent",
    "GroupState",
    "JoinRequest",
    "JoinResult",
    "JoinedMember",
    "Member",
    "MemberDescription",
    "MemberIdRequiredError",
    "SyncResult",
]
