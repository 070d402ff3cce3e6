"""What a classic group refuses, as plain functions that raise the error Kafka answers.

:class:`~streamlab.groups.group.Group` calls these on a member's request before its state
machine acts on it: a JoinGroup whose protocols the group cannot run, a request from a
static member's fenced incarnation, a SyncGroup for another protocol, an offset commit
from another generation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streamlab.errors import (
    FencedInstanceError,
    IllegalGenerationError,
    InconsistentProtocolError,
    RebalanceInProgressError,
    UnknownMemberError,
)
from streamlab.groups.state import GroupState, JoinRequest, Member


def check_protocols(
    group_id: str, protocol_type: str | None, protocol: str | None, others: Sequence[Member], request: JoinRequest
) -> None:
    """Raise :class:`InconsistentProtocolError` unless ``request`` names a protocol type
    and protocols, and (when there are ``others``) the group's type and a protocol every
    other member supports."""
    names = tuple(name for name, _ in request.protocols)
    if not names or not request.protocol_type:
        raise InconsistentProtocolError("a member must name a protocol type and at least one protocol")
    if not others:
        return
    if request.protocol_type != protocol_type:
        raise InconsistentProtocolError(
            f"group {group_id!r} has protocol type {protocol_type!r}, not {request.protocol_type!r}"
        )
    common = set(others[0].protocols).intersection(*(m.protocols for m in others[1:]))
    if not set(names) & common:
        raise InconsistentProtocolError(
            f"group {group_id!r} uses {protocol or sorted(others[0].protocols)!r}; "
            f"this member supports only {list(names)}"
        )


def check_not_fenced(static: Mapping[str, str], instance: str | None, member_id: str) -> None:
    """Raise :class:`FencedInstanceError` if the group.instance.id ``instance`` now
    belongs to another member than ``member_id`` (``static``: instance id -> member id)."""
    if instance is not None and static.get(instance, member_id) != member_id:
        raise FencedInstanceError(f"group.instance.id {instance!r} is now used by another member")


def leaving_member(static: Mapping[str, str], instance: str, member_id: str) -> str:
    """The member a LeaveGroup that names ``instance`` means (``member_id`` may be empty)."""
    current = static.get(instance)
    if current is None:
        raise UnknownMemberError(f"no member with group.instance.id {instance!r}")
    if member_id and member_id != current:
        raise FencedInstanceError(f"group.instance.id {instance!r} belongs to another member")
    return current


def check_sync_protocol(
    group_id: str, running: tuple[str | None, str | None], asked: tuple[str | None, str | None]
) -> None:
    """SyncGroup v5+ names the protocol type and name it expects (None: not said): they
    must be the ``running`` ones."""
    if (asked[0] is not None and asked[0] != running[0]) or (asked[1] is not None and asked[1] != running[1]):
        raise InconsistentProtocolError(f"group {group_id!r} runs {running[0]}/{running[1]}, not {asked[0]}/{asked[1]}")


def check_commit_generation(group_id: str, member: Member, generation: int, current: int, state: GroupState) -> None:
    """An offset commit must come from the group's ``current`` generation."""
    if generation == current:
        return
    if not member.external and state != GroupState.STABLE:
        # An embedded member whose generation is being replaced: Kafka's client
        # raises RebalanceInProgress here (the application polls, rejoins, and
        # its next commit lands); the broker's ILLEGAL_GENERATION is for the wire.
        raise RebalanceInProgressError(
            f"group {group_id!r} is rebalancing (generation {generation} is being replaced); poll again, then commit"
        )
    raise IllegalGenerationError(
        f"commit from generation {generation} rejected: group {group_id!r} is at generation {current}",
    )
