"""FindCoordinator: this broker coordinates every group (and transactional id) it is asked about.

v0-v3 ask about one key, v4 batches several (``coordinator_keys``), answered one entry each.
Key type 0 is a consumer group and 1 a transactional id; the single node answers both, so
a transactional producer hears about missing transactions from InitProducerId, where it
belongs. Other key types (share groups, 2) are not served: INVALID_REQUEST.
"""

from __future__ import annotations

from typing import Any

from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import GROUP_AUTHORIZATION_FAILED, Operation, ResourceType
from streamlab.server.handlers._groups import INVALID_REQUEST, NONE
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 10

SERVED_KEY_TYPES = {0: "group", 1: "transaction"}
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


def _lookup(ctx: ServerContext, conn: ConnectionInfo, key_type: int, key: str) -> tuple[int, str | None, int, str, int]:
    """(error code, message, node id, host, port)."""
    if key_type not in SERVED_KEY_TYPES:
        return INVALID_REQUEST, f"coordinator key type {key_type} is not served", -1, "", -1
    # Kafka wants DESCRIBE on the group or transactional id before naming its coordinator.
    if key_type == 0 and not ctx.authorize(conn, Operation.DESCRIBE, ResourceType.GROUP, key):
        return GROUP_AUTHORIZATION_FAILED, f"no DESCRIBE on group {key!r}", -1, "", -1
    if key_type == 1 and not ctx.authorize(conn, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, key):
        return TRANSACTIONAL_ID_AUTHORIZATION_FAILED, f"no DESCRIBE on transactional id {key!r}", -1, "", -1
    return NONE, None, ctx.node_id, ctx.advertised_host, ctx.advertised_port


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    key_type = int(getattr(body, "key_type", 0))
    if request.api_version >= 4:
        coordinators = []
        for key in body.coordinator_keys:
            code, message, node, host, port = _lookup(ctx, conn, key_type, key)
            coordinators.append(
                build(
                    t.Coordinator,
                    key=key,
                    node_id=node,
                    host=host,
                    port=port,
                    error_code=error_code(code),
                    error_message=message,
                )
            )
        return build(t.FindCoordinatorResponse, throttle_time=ZERO, coordinators=tuple(coordinators))
    code, message, node, host, port = _lookup(ctx, conn, key_type, body.key)
    return build(
        t.FindCoordinatorResponse, throttle_time=ZERO, error_code=error_code(code), error_message=message,
        node_id=node, host=host, port=port,
    )  # fmt: skip
