"""What a KIP-848 consumer group is made of and exchanges, apart from how it moves: the
epochs' sentinels, the group's settings, a member's record and its durable form (the
group's snapshot in ``server/consumer-groups``), the heartbeat's request and answer, and
what describing a group shows. :mod:`.consumer_group` runs the state machine over them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streamlab.errors import ConfigError, InvalidRegularExpressionError
from streamlab.model.types import TopicPartition

JOIN = 0
LEAVE = -1
LEAVE_STATIC = -2  # a static member leaving for now: it keeps its assignment for the session timeout


# Configuration -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerGroupConfig:
    """Kafka's ``group.consumer.session.timeout.ms`` and ``group.consumer.heartbeat.interval.ms``.
    Kafka's defaults (45 s, 5 s); lower values are allowed, for tests and notebooks."""

    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 5_000

    def __post_init__(self) -> None:
        for name in ("session_timeout_ms", "heartbeat_interval_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 3_600_000:
                raise ConfigError(f"{name} must be an integer from 100 to 3600000 (ms), got {value!r}")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ConfigError(
                f"the heartbeat interval ({self.heartbeat_interval_ms} ms) must be below the session timeout "
                f"({self.session_timeout_ms} ms)"
            )


# State -----------------------------------------------------------------------------------------
class MemberState(StrEnum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"  # asked to revoke; keeps its epoch until it has
    UNRELEASED_PARTITIONS = "unreleased_partitions"  # at the target epoch, waiting for partitions others hold


class ConsumerGroupState(StrEnum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True)
class ConsumerMember:
    member_id: str
    client_id: str
    host: str
    instance_id: str | None = None
    rack_id: str | None = None
    topics: frozenset[str] = frozenset()
    regex: str | None = None
    server_assignor: str | None = None
    rebalance_timeout_ms: int = 300_000
    epoch: int = 0
    previous_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: frozenset[TopicPartition] = frozenset()
    pending_revocation: frozenset[TopicPartition] = frozenset()
    last_heartbeat: float = 0.0
    revoke_deadline: float | None = None

    @property
    def owned(self) -> frozenset[TopicPartition]:
        """What the member may still be reading: assigned and not yet revoked."""
        return self.assigned | self.pending_revocation


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatRequest:
    """A ConsumerGroupHeartbeat in streamlab's types. None means "unchanged" (as on the wire)."""

    member_id: str
    epoch: int
    client_id: str = ""
    host: str = ""
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    topics: Sequence[str] | None = None
    regex: str | None = None
    server_assignor: str | None = None
    owned: frozenset[TopicPartition] | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    member_id: str
    epoch: int
    heartbeat_interval_ms: int
    assignment: frozenset[TopicPartition] | None  # None: not sent (the member's is unchanged)


@dataclass(frozen=True, slots=True)
class ConsumerMemberDescription:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    client_id: str
    host: str
    epoch: int
    state: MemberState
    topics: tuple[str, ...]
    regex: str | None
    assigned: tuple[TopicPartition, ...]
    pending_revocation: tuple[TopicPartition, ...]
    target: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class ConsumerGroupDescription:
    group_id: str
    state: ConsumerGroupState
    group_epoch: int
    assignment_epoch: int
    assignor: str
    members: tuple[ConsumerMemberDescription, ...]


def sorted_partitions(tps: frozenset[TopicPartition]) -> tuple[TopicPartition, ...]:
    return tuple(sorted(tps, key=lambda tp: (tp.topic, tp.partition)))


def compile_regex(pattern: str) -> re.Pattern[str]:
    """A subscription regex (Kafka uses RE2/J; Python's ``re`` agrees on the common syntax)."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidRegularExpressionError(f"subscribed topic regex {pattern!r} is invalid: {exc}") from None


def new_member_id() -> str:
    """A member id for a v0 join without one (v1 clients make their own)."""
    return uuid.uuid4().hex


# Durable form -----------------------------------------------------------------------------------
def partition_pairs(tps: frozenset[TopicPartition]) -> list[list[Any]]:
    return [[tp.topic, tp.partition] for tp in sorted_partitions(tps)]


def partitions_from_pairs(pairs: Sequence[Sequence[Any]]) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(str(t), int(p)) for t, p in pairs)


def member_doc(m: ConsumerMember) -> dict[str, Any]:
    """A member as plain JSON values; liveness (heartbeat times, deadlines) is not part of it."""
    return {"id": m.member_id, "client_id": m.client_id, "host": m.host, "instance_id": m.instance_id,
            "rack_id": m.rack_id, "topics": sorted(m.topics), "regex": m.regex,
            "assignor": m.server_assignor, "rebalance_timeout_ms": m.rebalance_timeout_ms,
            "epoch": m.epoch, "previous_epoch": m.previous_epoch, "state": str(m.state),
            "assigned": partition_pairs(m.assigned),
            "pending_revocation": partition_pairs(m.pending_revocation)}  # fmt: skip


def member_from_doc(d: Mapping[str, Any], *, now: float) -> ConsumerMember:
    """A :func:`member_doc` back, alive as of ``now``: a whole session timeout to heartbeat
    again, and a revocation still pending gets its whole rebalance timeout."""
    member = ConsumerMember(
        d["id"], d["client_id"], d["host"], instance_id=d["instance_id"], rack_id=d["rack_id"],
        topics=frozenset(d["topics"]), regex=d["regex"], server_assignor=d["assignor"],
        rebalance_timeout_ms=int(d["rebalance_timeout_ms"]), epoch=int(d["epoch"]),
        previous_epoch=int(d["previous_epoch"]), state=MemberState(d["state"]),
        assigned=partitions_from_pairs(d["assigned"]),
        pending_revocation=partitions_from_pairs(d["pending_revocation"]), last_heartbeat=now,
    )  # fmt: skip
    if member.state == MemberState.UNREVOKED_PARTITIONS:
        member.revoke_deadline = now + member.rebalance_timeout_ms / 1000
    return member
