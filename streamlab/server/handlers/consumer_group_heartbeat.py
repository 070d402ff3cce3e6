"""ConsumerGroupHeartbeat (KIP-848): joining, staying in and leaving a consumer group.

Epoch 0 joins (with the subscription, the rebalance timeout and no owned partitions), -1
leaves, -2 leaves for now (a static member, which keeps its assignment for the session
timeout); any other epoch is a heartbeat that reports what the member owns and gets its
next assignment (see :mod:`streamlab.groups.consumer_group`). Partitions travel by topic
ID. v1 clients make their own member id; a v0 join without one gets one from us.

Errors: a group id that is a classic group with members or a share group gets
GROUP_ID_NOT_FOUND, as in Kafka; a member the group does not know (expired or left; groups
survive a restart, see :mod:`streamlab.broker.consumer_groups`) gets UNKNOWN_MEMBER_ID and a wrong epoch
FENCED_MEMBER_EPOCH, after which the client rejoins with epoch 0.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.consumer_groups import consumer_groups
from streamlab.broker.share_registry import share_groups
from streamlab.errors import GroupTypeError, InvalidHeartbeatError, StreamlabError, UnknownMemberError
from streamlab.groups.consumer_member import (
    JOIN,
    HeartbeatRequest,
    HeartbeatResult,
    new_member_id,
)
from streamlab.model.types import TopicPartition
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._assignments import assignment
from streamlab.server.handlers._authz import GROUP_AUTHORIZATION_FAILED, group_allowed
from streamlab.server.handlers._groups import INVALID_REQUEST, client_host, millis_of
from streamlab.server.responses import ZERO, build, error_code, error_of, millis, types_for

API_KEY = 68


def _request(ctx: ServerContext, body: Any, member_id: str, conn: ConnectionInfo, client_id: str) -> HeartbeatRequest:
    owned: frozenset[TopicPartition] | None = None
    if body.topic_partitions is not None:
        found: set[TopicPartition] = set()
        for topic in body.topic_partitions:
            name = ctx.topic_ids.name_for(topic.topic_id)
            if name is not None:  # a deleted topic: nothing of it is owned any more
                found.update(TopicPartition(name, int(p)) for p in topic.partitions)
        owned = frozenset(found)
    if body.instance_id is not None and not body.instance_id:
        raise InvalidHeartbeatError("InstanceId can't be empty")
    if body.member_epoch == -2 and body.instance_id is None:
        raise InvalidHeartbeatError("InstanceId can't be null when MemberEpoch is -2")
    if body.member_epoch < -2:
        raise InvalidHeartbeatError(f"MemberEpoch {body.member_epoch} is invalid")
    timeout_ms = millis_of(body.rebalance_timeout)
    return HeartbeatRequest(
        member_id=member_id, epoch=int(body.member_epoch), client_id=client_id, host=client_host(conn),
        instance_id=body.instance_id, rack_id=body.rack_id, rebalance_timeout_ms=timeout_ms if timeout_ms >= 0 else -1,
        topics=None if body.subscribed_topic_names is None else tuple(body.subscribed_topic_names),
        regex=getattr(body, "subscribed_topic_regex", None), server_assignor=body.server_assignor, owned=owned,
    )  # fmt: skip


def _heartbeat(ctx: ServerContext, body: Any, member_id: str, conn: ConnectionInfo, client_id: str) -> HeartbeatResult:
    req = _request(ctx, body, member_id, conn, client_id)
    registry = consumer_groups(ctx.broker)
    if req.epoch == JOIN:
        if share_groups(ctx.broker).get(body.group_id) is not None:
            raise GroupTypeError(f"group {body.group_id!r} is a share group; a consumer group needs a name of its own")
        return registry.open(body.group_id).heartbeat(req)
    group = registry.get(body.group_id)
    if group is None:
        if req.epoch < 0:  # leaving a group that is gone already
            return HeartbeatResult(member_id, req.epoch, registry.config.heartbeat_interval_ms, None)
        raise UnknownMemberError(f"member {member_id!r} is not in group {body.group_id!r} (expired or left)")
    return group.heartbeat(req)


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    member_id = body.member_id
    if not member_id and request.api_version == 0 and body.member_epoch == JOIN:
        member_id = new_member_id()

    def answer(code: int, message: str | None = None, result: HeartbeatResult | None = None) -> Any:
        owned = result.assignment if result is not None else None  # None: unchanged, not sent
        return build(
            t.ConsumerGroupHeartbeatResponse, throttle_time=ZERO, error_code=error_code(code), error_message=message,
            member_id=member_id or None, member_epoch=result.epoch if result is not None else -1,
            heartbeat_interval=millis(result.heartbeat_interval_ms if result is not None else 0),
            assignment=assignment(ctx, t, owned) if owned is not None else None,
        )  # fmt: skip

    if not body.group_id:
        return answer(INVALID_REQUEST, "GroupId can't be empty")
    if not member_id:
        return answer(INVALID_REQUEST, "MemberId can't be empty")
    if not group_allowed(ctx, conn, body.group_id):
        return answer(GROUP_AUTHORIZATION_FAILED, f"no READ on group {body.group_id!r}")
    client_id = request.client_id or conn.client_id
    try:
        result = await asyncio.to_thread(_heartbeat, ctx, body, member_id, conn, client_id)
    except StreamlabError as exc:
        return answer(error_of(exc).value, str(exc))
    return answer(0, None, result)
