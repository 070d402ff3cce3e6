"""DescribeGroups: state, protocol and members of each group.

Members' metadata and assignments (the consumer protocol's bytes, as the members and
their leader sent them) are shown while the group is Stable, as Kafka shows them. A group
known only by its committed offsets is Empty; one not known at all is Dead with no error
(before v6, which streamlab does not serve, Kafka answered that way).
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.groups.coordinator import CONSUMER, GroupDescription, GroupState
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._groups import NONE, existing_group
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 15

# Kafka's encoding of "not requested", and of READ, DELETE and DESCRIBE on a group.
OPERATIONS_OMITTED = -(2**31)
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)


def _describe(ctx: ServerContext, group_id: str) -> GroupDescription:
    group = existing_group(ctx, group_id)
    if group is not None:
        return group.describe()
    has_offsets = bool(ctx.broker.catalog.committed(group_id))
    state = GroupState.EMPTY if has_offsets else GroupState.DEAD
    return GroupDescription(group_id, state, CONSUMER if has_offsets else "", "", ())


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    operations = GROUP_OPERATIONS if getattr(body, "include_authorized_operations", False) else OPERATIONS_OMITTED
    described = [await asyncio.to_thread(_describe, ctx, group_id) for group_id in body.groups]
    return build(
        t.DescribeGroupsResponse,
        throttle_time=ZERO,
        groups=tuple(
            build(
                t.DescribedGroup,
                error_code=error_code(NONE),
                group_id=d.group_id,
                group_state=str(d.state),
                protocol_type=d.protocol_type,
                protocol_data=d.protocol,
                members=tuple(
                    build(
                        t.DescribedGroupMember,
                        member_id=m.member_id,
                        group_instance_id=m.group_instance_id,
                        client_id=m.client_id,
                        client_host=m.host,
                        member_metadata=m.metadata,
                        member_assignment=m.assignment,
                    )
                    for m in d.members
                ),
                authorized_operations=operations,
            )
            for d in described
        ),
    )
