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
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._share import Refusal, apply_acks, by_topic_id, member_session, refused
from streamlab.server.handlers._topic_responses import topic_responses
from streamlab.server.responses import ZERO, build, error_code, error_of, millis, types_for
from streamlab.server.share_sessions import FINAL_EPOCH

API_KEY = 79


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    opened = member_session(ctx, conn, body, opening_allowed=False)
    if isinstance(opened, Refusal):
        return refused(t.ShareAcknowledgeResponse, opened.code, opened.message)
    group, _ = opened
    try:
        results = await asyncio.to_thread(apply_acks, ctx, group, body.member_id, body.topics)
    except StreamlabError as exc:
        return refused(t.ShareAcknowledgeResponse, error_of(exc).value, str(exc))
    if body.share_session_epoch == FINAL_EPOCH:
        ctx.share_sessions.close(body.group_id, body.member_id)
    leader = build(t.LeaderIdAndEpoch, leader_id=ctx.node_id, leader_epoch=0)
    responses = topic_responses(
        t.ShareAcknowledgeTopicResponse,
        t.PartitionData,
        (
            (topic_id, [{"partition_index": index, "error_code": error_code(r.ack_error or r.error),
                         "error_message": r.ack_message or r.message, "current_leader": leader}
                        for index, r in parts])
            for topic_id, parts in by_topic_id(ctx, results).items()
        ),
        topic_field="topic_id",
    )  # fmt: skip
    return build(
        t.ShareAcknowledgeResponse,
        throttle_time=ZERO,
        error_code=error_code(0),
        acquisition_lock_timeout=millis(group.config.record_lock_ms),  # v2: renewed locks last this long
        responses=responses,
        node_endpoints=(),
    )
