"""ShareGroupHeartbeat (KIP-932): joining, staying in and leaving a share group.

The member id is the client's own (a UUID it keeps for its lifetime). Epoch 0 joins,
-1 leaves (what the member holds becomes available again at once), anything else is a
heartbeat that may change the subscription. Every member of a share group is assigned
every partition of the topics it subscribes to (records, not partitions, are what members
share); the member epoch moves when that set changes. Group settings come from group
configs (IncrementalAlterConfigs on a GROUP resource), not from the members.

Errors: a group id used by a classic consumer group gets GROUP_ID_NOT_FOUND, as in Kafka;
a heartbeat from a member the group does not know (its session expired) gets
UNKNOWN_MEMBER_ID, and the client joins again with epoch 0.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.share_group import DEFAULT_SESSION_TIMEOUT_MS, ShareMember
from streamlab.broker.share_registry import share_groups
from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._assignments import assignment
from streamlab.server.handlers._authz import GROUP_AUTHORIZATION_FAILED, group_allowed
from streamlab.server.handlers._share import INVALID_REQUEST, UNKNOWN_MEMBER_ID
from streamlab.server.responses import ZERO, build, error_code, error_of, millis, types_for

API_KEY = 76

FENCED_MEMBER_EPOCH = 110
HEARTBEAT_INTERVAL_MS = 5_000  # group.share.heartbeat.interval.ms
JOIN, LEAVE = 0, -1


def _heartbeat(ctx: ServerContext, body: Any, client_id: str) -> tuple[int, str | None, ShareMember | None]:
    registry = share_groups(ctx.broker)
    topics = list(body.subscribed_topic_names) if body.subscribed_topic_names is not None else None
    if body.member_epoch == JOIN:
        if not topics:
            return INVALID_REQUEST, "a member joins a share group with the topics it subscribes to", None
        group = registry.open_for_wire(body.group_id)
        group.join(client_id=client_id, topics=topics, session_timeout_ms=DEFAULT_SESSION_TIMEOUT_MS,
                   member_id=body.member_id)  # fmt: skip
        return 0, None, group.heartbeat(body.member_id, None)
    existing = registry.get(body.group_id)
    if body.member_epoch == LEAVE:
        if existing is not None:
            existing.leave(body.member_id)
        ctx.share_sessions.close(body.group_id, body.member_id)
        return 0, None, None
    if existing is None or body.member_id not in existing.members:
        return UNKNOWN_MEMBER_ID, f"member {body.member_id!r} is not in share group {body.group_id!r}", None
    member = existing.heartbeat(body.member_id, topics)
    if body.member_epoch > member.epoch:
        return FENCED_MEMBER_EPOCH, f"member epoch {body.member_epoch} is ahead of {member.epoch}", None
    return 0, None, member


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)

    def answer(code: Any, message: str | None = None, epoch: int = -1, assigned: Any = None) -> Any:
        return build(t.ShareGroupHeartbeatResponse, throttle_time=ZERO, error_code=code, error_message=message,
                     member_id=body.member_id, member_epoch=epoch, heartbeat_interval=millis(HEARTBEAT_INTERVAL_MS),
                     assignment=assigned)  # fmt: skip

    if not body.member_id or not body.group_id:
        return answer(error_code(INVALID_REQUEST), "group id and member id are required")
    if not group_allowed(ctx, conn, body.group_id):
        return answer(error_code(GROUP_AUTHORIZATION_FAILED), f"no READ on group {body.group_id!r}")
    try:
        code, message, member = await asyncio.to_thread(_heartbeat, ctx, body, conn.client_id)
    except StreamlabError as exc:
        return answer(error_of(exc), str(exc))
    if code or member is None:
        return answer(error_code(code), message)  # an error, or a member that left: epoch -1
    return answer(error_code(0), None, epoch=member.epoch, assigned=assignment(ctx, t, member.assigned))
