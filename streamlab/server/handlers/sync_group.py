"""SyncGroup: the leader hands out the assignment; every member receives its part.

A member's SyncGroup waits while the group is CompletingRebalance, until the leader's
arrives with every member's assignment (or the rebalance timeout expels the leader, and
the group rebalances: REBALANCE_IN_PROGRESS). When the leader is an embedded consumer the
coordinator has already assigned, and the answer comes at once. v5 checks the protocol
type and name the member expects (INCONSISTENT_GROUP_PROTOCOL if they differ).
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.groups.consumer_protocol import decode_assignment
from streamlab.groups.state import SyncResult
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._groups import (
    CONSUMER_PROTOCOL,
    NONE,
    UNKNOWN_MEMBER_ID,
    answer,
    existing_group,
    group_refusal,
    wait_limit,
    warn_if_malformed,
)
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for

API_KEY = 14


def _answer(request: ParsedRequest, code: int, result: SyncResult | None = None) -> Any:
    return build(
        types_for(API_KEY, request.api_version).SyncGroupResponse,
        throttle_time=ZERO,
        error_code=error_code(code),
        protocol_type=result.protocol_type if result is not None else None,
        protocol_name=result.protocol if result is not None else None,
        assignment=result.assignment if result is not None else b"",
    )


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    refused = group_refusal(ctx, conn, body.group_id)
    if refused:
        return _answer(request, refused)
    group = existing_group(ctx, body.group_id)
    if group is None:
        return _answer(request, UNKNOWN_MEMBER_ID)
    assignments = {a.member_id: bytes(a.assignment) for a in body.assignments}
    if group.protocol_type == CONSUMER_PROTOCOL:
        warn_if_malformed(conn, body.group_id, "assignment for member", assignments.items(), decode_assignment)
    pending = await asyncio.to_thread(
        group.sync_wire, body.member_id, body.generation_id, assignments,
        group_instance_id=getattr(body, "group_instance_id", None),
        protocol_type=getattr(body, "protocol_type", None),
        protocol_name=getattr(body, "protocol_name", None),
    )  # fmt: skip
    try:
        result = await answer(pending, wait_limit(group))
    except StreamlabError as exc:
        return _answer(request, error_of(exc).value)
    return _answer(request, NONE, result)
