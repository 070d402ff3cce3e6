"""A classic group's assignment decisions, as plain functions of its members.

:class:`~streamlab.groups.group.Group` calls these when a generation opens: what each
member subscribes to and owns, the assignment the embedded leader's client would compute
(and whether a cooperative follow-up round is needed), and what a wire leader's
SyncGroup hands out. They read members and return values; :func:`hand_out` alone
writes, giving each member the assignment the group installs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from streamlab.groups.assignors import Subscription, assign, cooperative_assignment
from streamlab.groups.consumer_protocol import (
    ConsumerProtocolError,
    decode_assignment,
    decode_subscription,
    encode_assignment,
)
from streamlab.groups.state import COOPERATIVE, Member
from streamlab.model.types import TopicPartition


def subscribed_topics(protocols: Sequence[tuple[str, bytes]]) -> tuple[str, ...]:
    """The topics of the first protocol whose metadata is a consumer subscription."""
    for _, metadata in protocols:
        try:
            return decode_subscription(metadata).topics
        except ConsumerProtocolError:
            continue
    return ()


def subscribed(members: Iterable[Member]) -> list[str]:
    """Every topic some member subscribes to, sorted."""
    return sorted({t for m in members for t in m.topics})


def subscription(member: Member, protocol: str | None, generation: int) -> Subscription:
    """What ``member`` subscribes to and owned in ``generation`` (a wire member says so in
    its protocol metadata; an embedded one is known directly)."""
    topics, owned, owned_generation = member.topics, member.assignment, generation
    if member.external:
        try:
            sub = decode_subscription(member.protocol_metadata.get(protocol or "", b""))
            topics, owned, owned_generation = sub.topics, sub.owned, sub.generation
        except ConsumerProtocolError:
            owned, owned_generation = (), -1
    return Subscription(member.member_id, topics, owned, owned_generation, member.group_instance_id)


def leader_assignment(
    protocol: str, members: Iterable[Member], owned_generation: int, partitions: Mapping[str, int]
) -> tuple[dict[str, list[TopicPartition]], bool]:
    """What the embedded leader's client would compute (``members`` owned their partitions
    in ``owned_generation``), and whether a cooperative follow-up rebalance must hand out
    partitions revoked this round."""
    subs = [subscription(m, protocol, owned_generation) for m in members]
    if protocol in COOPERATIVE:
        new = cooperative_assignment(subs, partitions)
        full = assign(protocol, subs, partitions)
        return new, sum(map(len, new.values())) != sum(map(len, full.values()))
    return assign(protocol, subs, partitions), False


def decoded_assignment(
    protocol: str | None, members: Iterable[Member], assignments: Mapping[str, bytes]
) -> tuple[dict[str, list[TopicPartition]], bool]:
    """The partitions a wire leader's SyncGroup gives each member, and whether a
    cooperative follow-up is needed: the leader's client runs it for wire members; an
    embedded member that gave partitions up asks for it through the group."""
    decoded: dict[str, list[TopicPartition]] = {}
    members = list(members)
    for member in members:
        try:
            decoded[member.member_id] = list(decode_assignment(assignments.get(member.member_id, b"")))
        except ConsumerProtocolError:
            decoded[member.member_id] = []  # not a consumer-protocol group: nothing to record
    follow_up = protocol in COOPERATIVE and any(
        not m.external and set(m.assignment) - set(decoded[m.member_id]) for m in members
    )
    return decoded, follow_up


def hand_out(
    members: Mapping[str, Member], new: Mapping[str, Sequence[TopicPartition]], raw: Mapping[str, bytes] | None
) -> dict[str, tuple[TopicPartition, ...]]:
    """Give each member its partitions of ``new``, with the bytes its SyncGroup answer
    carries (the wire leader's ``raw`` ones, else encoded here); returns who owns what now."""
    for member_id, member in members.items():
        given = tuple(new.get(member_id, ()))
        member.assignment = given
        member.assignment_bytes = raw.get(member_id, b"") if raw is not None else encode_assignment(given)
    return {m.member_id: m.assignment for m in members.values()}
