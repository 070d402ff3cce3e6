"""ListGroups: every group with live members or committed offsets, and its state.

v4 filters by state (case-insensitively, as Kafka does). Every streamlab group is a
consumer group, including one known only by the offsets it committed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.group_admin import list_groups
from streamlab.groups.coordinator import CONSUMER
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._groups import NONE
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 16


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    rows = await asyncio.to_thread(list_groups, ctx.broker)
    wanted = {s.lower() for s in getattr(body, "states_filter", ())}
    live = ctx.broker.groups.groups()
    return build(
        t.ListGroupsResponse,
        throttle_time=ZERO,
        error_code=error_code(NONE),
        groups=tuple(
            build(
                t.ListedGroup,
                group_id=row["group"],
                protocol_type=(g.protocol_type if (g := live.get(row["group"])) and g.protocol_type else CONSUMER),
                group_state=row["state"],
            )
            for row in rows
            if not wanted or row["state"].lower() in wanted
        ),
    )
