"""LeaveGroup: members leave at once instead of waiting out their session.

v0-v2 name one member and answer with one error code; v3+ list members (a static member
may be named by its group.instance.id alone) and answer per member.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.groups.group import Group
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._groups import NONE, UNKNOWN_MEMBER_ID, existing_group, group_refusal
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 13


def _leave(group: Group | None, leaving: list[tuple[str, str | None, str | None]]) -> list[int]:
    codes = []
    for member_id, instance, reason in leaving:
        if group is None:
            codes.append(UNKNOWN_MEMBER_ID)
            continue
        try:
            group.leave_wire(member_id, instance, reason)
            codes.append(NONE)
        except StreamlabError as exc:
            codes.append(exc.kafka_code)
    return codes


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    leaving: list[tuple[str, str | None, str | None]]
    if request.api_version < 3:
        leaving = [(body.member_id, None, None)]
    else:
        leaving = [(m.member_id, m.group_instance_id, getattr(m, "reason", None)) for m in body.members]
    refused = group_refusal(ctx, conn, body.group_id)
    if refused:
        return build(t.LeaveGroupResponse, throttle_time=ZERO, error_code=error_code(refused), members=())
    codes = await asyncio.to_thread(_leave, existing_group(ctx, body.group_id), leaving)
    if request.api_version < 3:
        return build(t.LeaveGroupResponse, throttle_time=ZERO, error_code=error_code(codes[0]))
    return build(
        t.LeaveGroupResponse,
        throttle_time=ZERO,
        error_code=error_code(NONE),
        members=tuple(
            build(t.MemberResponse, member_id=member_id, group_instance_id=instance, error_code=error_code(code))
            for (member_id, instance, _), code in zip(leaving, codes, strict=True)
        ),
    )
