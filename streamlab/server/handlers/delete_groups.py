"""DeleteGroups: delete empty groups and their committed offsets (``kafka-consumer-groups --delete``).

A group with members is NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND, as in Kafka;
DELETE on the group is needed. The deletion is journaled with the commits, so it holds
after a crash.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.group_admin import delete_group
from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import GROUP_AUTHORIZATION_FAILED, Operation, group_allowed
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for

API_KEY = 42


def _delete(ctx: ServerContext, group_id: str) -> int:
    try:
        delete_group(ctx.broker, group_id)
    except StreamlabError as exc:
        return error_of(exc).value
    return 0


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    results = []
    for group_id in body.groups_names:
        if not group_allowed(ctx, conn, group_id, Operation.DELETE):
            code = GROUP_AUTHORIZATION_FAILED
        else:
            code = await asyncio.to_thread(_delete, ctx, group_id)
        results.append(build(t.DeletableGroupResult, group_id=group_id, error_code=error_code(code)))
    return build(t.DeleteGroupsResponse, throttle_time=ZERO, results=tuple(results))
