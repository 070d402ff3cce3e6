"""Heartbeat: a member is alive; the answer tells it whether to rejoin.

REBALANCE_IN_PROGRESS asks it to rejoin, ILLEGAL_GENERATION that it is behind,
UNKNOWN_MEMBER_ID that it was removed (session timeout, or it left), and
FENCED_INSTANCE_ID that a newer process took over its group.instance.id.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._groups import UNKNOWN_MEMBER_ID, existing_group, group_refusal
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for

API_KEY = 12


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    code = group_refusal(ctx, conn, body.group_id)
    group = None if code else existing_group(ctx, body.group_id)
    if group is not None:
        try:
            await asyncio.to_thread(
                group.heartbeat, body.member_id, body.generation_id,
                group_instance_id=getattr(body, "group_instance_id", None),
            )  # fmt: skip
        except StreamlabError as exc:
            code = error_of(exc).value
    elif not code:
        code = UNKNOWN_MEMBER_ID
    return build(t.HeartbeatResponse, throttle_time=ZERO, error_code=error_code(code))
