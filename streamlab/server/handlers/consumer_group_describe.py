"""ConsumerGroupDescribe (KIP-848): epochs, assignor and members of consumer-protocol groups.

Each member shows its epoch, subscription, current assignment (what it owns and may read)
and target assignment. A group id that is not a consumer-protocol group (classic, share,
unknown) is answered GROUP_ID_NOT_FOUND, as Kafka does: admin clients then describe it
with DescribeGroups.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.consumer_groups import consumer_groups
from streamlab.groups.consumer_member import ConsumerGroupDescription, ConsumerMemberDescription
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._assignments import assignment
from streamlab.server.handlers._authz import (
    GROUP_AUTHORIZATION_FAILED,
    Operation,
    ResourceType,
    authorized_operations,
    group_allowed,
)
from streamlab.server.handlers._groups import NONE
from streamlab.server.responses import ZERO, build, build_from, error_code, types_for

API_KEY = 69

GROUP_ID_NOT_FOUND = 69
CONSUMER_MEMBER = 1  # member_type: a member of the consumer protocol (0 would be a classic one)
OPERATIONS_OMITTED = -(2**31)  # Kafka's encoding of "not requested"


def _describe(ctx: ServerContext, group_id: str) -> ConsumerGroupDescription | None:
    group = consumer_groups(ctx.broker).get(group_id)
    return group.describe() if group is not None else None


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)

    def member(m: ConsumerMemberDescription) -> Any:
        return build_from(t.Member, m, "member_id", "instance_id", "rack_id", "client_id", member_epoch=m.epoch,
                          client_host=m.host, subscribed_topic_names=m.topics, subscribed_topic_regex=m.regex,
                          assignment=assignment(ctx, t, m.assigned + m.pending_revocation),
                          target_assignment=assignment(ctx, t, m.target), member_type=CONSUMER_MEMBER)  # fmt: skip

    def group_answer(group_id: str, code: int, message: str | None, d: ConsumerGroupDescription | None) -> Any:
        return build(
            t.DescribedGroup,
            error_code=error_code(code),
            error_message=message,
            group_id=group_id,
            group_state=str(d.state) if d else "",
            group_epoch=d.group_epoch if d else -1,
            assignment_epoch=d.assignment_epoch if d else -1,
            assignor_name=d.assignor if d else "",
            members=tuple(member(m) for m in (d.members if d else ())),
            authorized_operations=authorized_operations(ctx, conn, ResourceType.GROUP, group_id)
            if d and body.include_authorized_operations
            else OPERATIONS_OMITTED,
        )

    groups = []
    for group_id in body.group_ids:
        if not group_allowed(ctx, conn, group_id, Operation.DESCRIBE):
            groups.append(
                group_answer(group_id, GROUP_AUTHORIZATION_FAILED, f"no DESCRIBE on group {group_id!r}", None)
            )
            continue
        described = await asyncio.to_thread(_describe, ctx, group_id)
        if described is None:
            groups.append(
                group_answer(group_id, GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.", None)
            )
        else:
            groups.append(group_answer(group_id, NONE, None, described))
    return build(t.ConsumerGroupDescribeResponse, throttle_time=ZERO, groups=tuple(groups))
