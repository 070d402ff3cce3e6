"""What a classic group tells its members, and how a parked request gets it.

JoinGroup and SyncGroup requests wait on a ``concurrent.futures.Future`` until the
generation opens; :func:`answer` resolves one unless its client gave up on it.
:func:`join_result` is what JoinGroup returns (every member's metadata for the leader
only), :func:`describe_group` what DescribeGroups shows. They read the group's members
and fields; :class:`~streamlab.groups.group.Group` decides when to call them.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from streamlab.groups.state import (
    GroupDescription,
    GroupState,
    JoinedMember,
    JoinResult,
    Member,
    MemberDescription,
)


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


def join_result(
    member: Member,
    members: Iterable[Member],
    *,
    generation: int,
    protocol_type: str | None,
    protocol: str | None,
    leader: str | None,
    skip_assignment: bool = False,
) -> JoinResult:
    """``member``'s JoinGroup answer for ``generation``: the leader gets every member's
    metadata (as of the generation before, which its assignor reads as what they owned)."""
    is_leader = member.member_id == leader
    joined = (
        tuple(JoinedMember(m.member_id, m.group_instance_id, m.metadata(protocol, generation - 1)) for m in members)
        if is_leader
        else ()
    )
    return JoinResult(
        member.member_id, generation, protocol_type, protocol, leader or "", joined, skip_assignment and is_leader
    )


def describe_group(
    group_id: str,
    state: GroupState,
    members: Iterable[Member],
    *,
    generation: int,
    protocol_type: str | None,
    protocol: str | None,
) -> GroupDescription:
    """Kafka's DescribeGroups view: metadata and assignments only while Stable."""
    stable = state == GroupState.STABLE
    described = tuple(
        MemberDescription(
            m.member_id,
            m.group_instance_id,
            m.client_id,
            m.host,
            m.metadata(protocol, generation) if stable else b"",
            m.assignment_bytes if stable else b"",
        )
        for m in members
    )
    return GroupDescription(group_id, state, protocol_type or "", (protocol or "") if stable else "", described)
