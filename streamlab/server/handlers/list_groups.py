"""ListGroups: every group with live members or committed offsets, its state and type.

v4+ filters by state and v5+ by type (both case-insensitively, as Kafka does). A group
known only by the offsets it committed is an Empty classic group; consumer-protocol
(KIP-848) groups have type ``consumer``; share groups (type ``share``) are listed only when
a type filter names them, so consumer-group tools that ask for every group see only
consumer groups, as they expect.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.consumer_groups import list_consumer_groups
from streamlab.broker.group_admin import list_groups
from streamlab.broker.share_registry import list_share_groups
from streamlab.groups.state import CONSUMER
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import Operation, ResourceType, group_allowed
from streamlab.server.handlers._groups import NONE
from streamlab.server.responses import ZERO, build, error_code, types_for
from streamlab.server.security.acls import CLUSTER_NAME

API_KEY = 16


def _rows(ctx: ServerContext) -> list[dict[str, Any]]:
    consumer = list_consumer_groups(ctx.broker)
    taken = {row["group"] for row in consumer}
    live = ctx.broker.groups.groups()
    rows = [
        {**row, "type": "classic",
         "protocol": g.protocol_type if (g := live.get(row["group"])) and g.protocol_type else CONSUMER}
        for row in list_groups(ctx.broker)
        if row["group"] not in taken
    ]  # fmt: skip
    rows += [{**row, "protocol": CONSUMER} for row in consumer]
    rows += [
        {"group": row["group"], "state": "Stable" if row["members"] else "Empty", "type": "share", "protocol": "share"}
        for row in list_share_groups(ctx.broker)
    ]
    return rows


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    rows = await asyncio.to_thread(_rows, ctx)
    states = {s.lower() for s in getattr(body, "states_filter", ())}
    types = {s.lower() for s in getattr(body, "types_filter", ())}
    rows = [
        row
        for row in rows
        if (not states or row["state"].lower() in states)
        and (row["type"] in types if types else row["type"] != "share")
    ]
    # DESCRIBE on the cluster lists every group; otherwise those the principal may DESCRIBE.
    if not ctx.authorize(conn, Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        rows = [row for row in rows if group_allowed(ctx, conn, row["group"], Operation.DESCRIBE)]
    return build(
        t.ListGroupsResponse,
        throttle_time=ZERO,
        error_code=error_code(NONE),
        groups=tuple(
            build(
                t.ListedGroup,
                group_id=row["group"],
                protocol_type=row["protocol"],
                group_state=row["state"],
                group_type=row["type"],
            )
            for row in sorted(rows, key=lambda row: (row["group"], row["type"]))
        ),
    )
