"""DescribeGroups: state, protocol and members of each group.

Members' metadata and assignments (the consumer protocol's bytes, as the members and
their leader sent them) are shown while the group is Stable, as Kafka shows them. A group
known only by its committed offsets is Empty; one not known at all is Dead with no error
(before v6, which streamlab does not serve, Kafka answered that way). A consumer-protocol
(KIP-848) group is shown as a ``consumer`` group with its state, its assignor as protocol and
its members' subscriptions and assignments in the classic consumer protocol's bytes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.consumer_groups import consumer_groups, describe_consumer_group
from streamlab.groups.state import CONSUMER, GroupDescription, GroupState, MemberDescription
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import (
    GROUP_AUTHORIZATION_FAILED,
    Operation,
    ResourceType,
    authorized_operations,
    group_allowed,
)
from streamlab.server.handlers._groups import NONE, existing_group
from streamlab.server.responses import ZERO, build, build_from, error_code, types_for

API_KEY = 15

OPERATIONS_OMITTED = -(2**31)  # Kafka's encoding of "not requested"


def _describe(ctx: ServerContext, group_id: str) -> GroupDescription:
    consumer_group = consumer_groups(ctx.broker).get(group_id)
    if consumer_group is not None:
        return describe_consumer_group(consumer_group.describe())
    group = existing_group(ctx, group_id)
    if group is not None:
        return group.describe()
    has_offsets = bool(ctx.broker.catalog.committed(group_id))
    state = GroupState.EMPTY if has_offsets else GroupState.DEAD
    return GroupDescription(group_id, state, CONSUMER if has_offsets else "", "", ())


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    asked = bool(getattr(body, "include_authorized_operations", False))
    denied = {g for g in body.groups if not group_allowed(ctx, conn, g, Operation.DESCRIBE)}
    described = [
        GroupDescription(group_id, GroupState.DEAD, "", "", ())
        if group_id in denied
        else await asyncio.to_thread(_describe, ctx, group_id)
        for group_id in body.groups
    ]

    def member(m: MemberDescription) -> Any:
        return build_from(t.DescribedGroupMember, m, "member_id", "group_instance_id", "client_id",
                          client_host=m.host, member_metadata=m.metadata, member_assignment=m.assignment)  # fmt: skip

    return build(
        t.DescribeGroupsResponse,
        throttle_time=ZERO,
        groups=tuple(
            build(
                t.DescribedGroup,
                error_code=error_code(GROUP_AUTHORIZATION_FAILED if d.group_id in denied else NONE),
                group_id=d.group_id,
                group_state=str(d.state),
                protocol_type=d.protocol_type,
                protocol_data=d.protocol,
                members=tuple(member(m) for m in d.members),
                authorized_operations=authorized_operations(ctx, conn, ResourceType.GROUP, d.group_id)
                if asked and d.group_id not in denied
                else OPERATIONS_OMITTED,
            )
            for d in described
        ),
    )
