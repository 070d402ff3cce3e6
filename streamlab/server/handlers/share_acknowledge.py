"""ShareAcknowledge (KIP-932): acknowledgements without a fetch.

Clients send it to commit acknowledgements on their own (``commit_sync``) and, with
epoch -1, when closing their share session. It cannot open a session (epoch 0 is refused
with INVALID_SHARE_SESSION_EPOCH). Each partition's error says whether every
acknowledgement took: INVALID_RECORD_STATE when the member no longer held a record.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.model.types import TopicPartition
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import GROUP_AUTHORIZATION_FAILED, group_allowed
from streamlab.server.handlers._share import UNKNOWN_MEMBER_ID, apply_acks, group_of
from streamlab.server.responses import ZERO, build, error_code, error_of, millis, types_for
from streamlab.server.share_sessions import FINAL_EPOCH, SessionError

API_KEY = 79


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    group = group_of(ctx, body.group_id, body.member_id)

    def top_level(code: Any, message: str) -> Any:
        return build(t.ShareAcknowledgeResponse, throttle_time=ZERO, error_code=code, error_message=message,
                     responses=(), node_endpoints=(), acquisition_lock_timeout=ZERO)  # fmt: skip

    if not group_allowed(ctx, conn, body.group_id):
        return top_level(error_code(GROUP_AUTHORIZATION_FAILED), f"no READ on group {body.group_id!r}")
    if group is None:
        return top_level(error_code(UNKNOWN_MEMBER_ID), f"member {body.member_id!r} is not in share group "
                         f"{body.group_id!r}")  # fmt: skip
    try:
        ctx.share_sessions.use(body.group_id, body.member_id, body.share_session_epoch, opening_allowed=False)
    except SessionError as exc:
        return top_level(error_code(exc.code), str(exc))
    try:
        results = await asyncio.to_thread(apply_acks, ctx, group, body.member_id, body.topics)
    except StreamlabError as exc:
        return top_level(error_of(exc), str(exc))
    if body.share_session_epoch == FINAL_EPOCH:
        ctx.share_sessions.close(body.group_id, body.member_id)
    by_topic: dict[Any, list[tuple[int, int, str | None]]] = {}
    for key, r in results.items():
        topic_id, index = (ctx.topic_ids.id_for(key.topic), key.partition) if isinstance(key, TopicPartition) else key
        by_topic.setdefault(topic_id, []).append((index, r.ack_error or r.error, r.ack_message or r.message))
    leader = build(t.LeaderIdAndEpoch, leader_id=ctx.node_id, leader_epoch=0)
    return build(
        t.ShareAcknowledgeResponse,
        throttle_time=ZERO,
        error_code=error_code(0),
        acquisition_lock_timeout=millis(group.config.record_lock_ms),  # v2: renewed locks last this long
        responses=tuple(
            build(
                t.ShareAcknowledgeTopicResponse,
                topic_id=topic_id,
                partitions=tuple(
                    build(
                        t.PartitionData,
                        partition_index=i,
                        error_code=error_code(code),
                        error_message=message,
                        current_leader=leader,
                    )
                    for i, code, message in sorted(parts, key=lambda item: item[0])
                ),
            )
            for topic_id, parts in by_topic.items()
        ),
        node_endpoints=(),
    )
