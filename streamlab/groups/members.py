"""A classic group's members as their JoinGroups describe them: plain functions over
:class:`~streamlab.groups.state.Member`.

:class:`~streamlab.groups.group.Group` (the state machine) calls these to check that a
member from its first JoinGroup, take what a rejoin says, tell whether a rejoin changed
anything or a member ran out of time, and let a departing member's parked requests go.
What a group refuses is in :mod:`.request_checks`.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

from streamlab.groups.answers import answer
from streamlab.groups.state import JoinRequest, JoinResult, Member


@dataclass(frozen=True, slots=True)
class Joining:
    """One JoinGroup being handled: the request, the topics it subscribes to, whether it
    came over the wire (``external``), and the future its answer goes to (None for an
    embedded member, answered by the call's return)."""

    request: JoinRequest
    topics: tuple[str, ...]
    external: bool
    waiter: Future[JoinResult] | None = None


def new_member(member_id: str, joining: Joining, now: float) -> Member:
    """A member made from its first JoinGroup, alive as of ``now``."""
    request = joining.request
    member = Member(member_id, request.client_id, request.host, joining.topics, (), 0, 0, request.group_instance_id)
    update_member(member, request, joining.topics, joining.external)
    member.last_heartbeat = member.last_poll = now
    return member


def update_member(member: Member, request: JoinRequest, topics: tuple[str, ...], external: bool) -> None:
    """Take what a JoinGroup says about ``member`` (client, timeouts, protocols, topics)."""
    member.client_id, member.host = request.client_id, request.host
    member.session_timeout_ms = request.session_timeout_ms
    member.rebalance_timeout_ms = request.rebalance_timeout_ms
    member.protocols = tuple(name for name, _ in request.protocols)
    member.protocol_type = request.protocol_type
    member.topics = topics
    member.external = external
    member.protocol_metadata = dict(request.protocols) if external else {}


def unchanged(member: Member, joining: Joining) -> bool:
    """Whether a rejoin asks for what ``member`` has: a wire member the same protocols with
    the same metadata in the same order, an embedded one the same topics and assignors."""
    request = joining.request
    if member.external:
        return member.protocol_metadata == dict(request.protocols) and list(member.protocol_metadata) == [
            name for name, _ in request.protocols
        ]
    return member.topics == joining.topics and member.protocols == tuple(n for n, _ in request.protocols)


def out_of_time(member: Member, now: float) -> str | None:
    """Why ``member`` is out of the group at ``now``: its session ran out, or (an embedded
    member) its poll interval; None while it is alive."""
    if now - member.last_heartbeat > member.session_timeout_ms / 1000:
        return f"member {member.member_id} timed out (session.timeout.ms)"
    if not member.external and now - member.last_poll > member.rebalance_timeout_ms / 1000:
        return f"member {member.member_id} left: max.poll.interval.ms exceeded"
    return None


def let_go(member: Member, error: BaseException) -> None:
    """Answer ``member``'s parked JoinGroup and SyncGroup with ``error``."""
    answer(member.join_waiter, error=error)
    answer(member.sync_waiter, error=error)
    member.join_waiter = member.sync_waiter = None


def with_reason(reason: str, request: JoinRequest) -> str:
    """``reason``, with the client's own (KIP-800) when it gave one."""
    return f"{reason} ({request.reason})" if request.reason else reason
