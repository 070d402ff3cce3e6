"""ShareFetch (KIP-932): acknowledge, then acquire records for a share-group member.

The request belongs to the member's share session (:mod:`streamlab.server.share_sessions`):
it may add partitions to it, forget some, and carry acknowledgements for records fetched
before, which are applied first. Then records are acquired under the group's acquisition
lock (``share.record.lock.duration.ms``, reported back as ``acquisition_lock_timeout``)
from the session's partitions, waiting up to ``max_wait`` for some to become available:
new ones appended, released ones, or ones whose lock ran out (locks expire lazily, so the
wait looks again at least twice a second). Each partition answers with one v2 batch of
exactly the acquired records and their (first, last, delivery count) ranges, within the
request's ``max_bytes``, ``fetch.max.bytes`` and the memory budget. Epoch -1
applies the acknowledgements and closes the session without fetching.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.share_group import Delivery, ShareGroup
from streamlab.errors import StreamlabError
from streamlab.model.types import TopicPartition
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import TOPIC_AUTHORIZATION_FAILED, Operation, topic_allowed
from streamlab.server.handlers._share import (
    PartitionResult,
    Refusal,
    apply_acks,
    by_topic_id,
    member_session,
    ranges,
    refused,
    resolve,
)
from streamlab.server.handlers._topic_responses import topic_responses
from streamlab.server.handlers.fetch import encode_records
from streamlab.server.responses import ZERO, build, error_code, error_of, millis, types_for
from streamlab.server.share_sessions import FINAL_EPOCH

API_KEY = 78

DEFAULT_MAX_RECORDS = 500
MAX_WAIT_S = 30.0
RECHECK_S = 0.5  # how often a waiting fetch looks for expired locks
_NO_LIMIT = 2**31 - 1  # every acquired record must be sent: the lock is already taken


def _deliver(ctx: ServerContext, deliveries: list[Delivery], results: dict[Any, PartitionResult]) -> None:
    for d in deliveries:
        result = results.setdefault(TopicPartition(d.topic, d.partition), PartitionResult())
        state = ctx.broker.topics.get(d.topic)
        log_append = state is not None and state.config["message.timestamp.type"] == "LogAppendTime"
        result.records = encode_records(d.table, _NO_LIMIT, True, log_append)
        result.acquired = ranges(d.delivery_counts)


async def _fetch(ctx: ServerContext, group: ShareGroup, member_id: str, body: Any,
                 partitions: set[TopicPartition]) -> list[Delivery]:  # fmt: skip
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(body.max_wait.total_seconds(), MAX_WAIT_S)
    limit = int(body.max_records) if body.max_records > 0 else DEFAULT_MAX_RECORDS
    lock_ms = group.config.record_lock_ms
    # As Fetch: the response is bounded by the request's max_bytes, fetch.max.bytes and the
    # memory budget, held before anything is read (records acquired past it are given back
    # unsent); nothing is held while waiting.
    wanted = min(int(body.max_bytes) if body.max_bytes > 0 else _NO_LIMIT, ctx.limits.fetch_max_bytes)
    while True:
        generation = ctx.data.generation
        leased = ctx.memory.lease(wanted)
        try:
            got = await asyncio.to_thread(group.fetch, member_id, limit, lock_ms, partitions, max_bytes=leased)
        finally:
            ctx.memory.release(leased)  # from here the connection counts the encoded response
        remaining = deadline - loop.time()
        if got or remaining <= 0 or ctx.shutting_down or not partitions:
            return got
        await ctx.data.wait(generation, min(remaining, RECHECK_S))


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    opened = member_session(ctx, conn, body, unknown_hint=": join it with ShareGroupHeartbeat")
    if isinstance(opened, Refusal):
        return refused(t.ShareFetchResponse, opened.code, opened.message)
    group, session = opened
    member_id: str = body.member_id
    results: dict[Any, PartitionResult] = {}
    closing = body.share_session_epoch == FINAL_EPOCH
    for topic in body.topics:
        for part in topic.partitions:
            tp, code = resolve(ctx, topic.topic_id, int(part.partition_index))
            if tp is None:
                results[(topic.topic_id, int(part.partition_index))] = PartitionResult(error=code)
            elif not topic_allowed(ctx, conn, tp.topic, Operation.READ):
                results[(topic.topic_id, int(part.partition_index))] = PartitionResult(error=TOPIC_AUTHORIZATION_FAILED)
            elif not closing:
                session.partitions.add(tp)
    for forgotten in body.forgotten_topics_data:
        for index in forgotten.partitions:
            tp, _ = resolve(ctx, forgotten.topic_id, int(index))
            if tp is not None:
                session.partitions.discard(tp)
    try:
        results.update(await asyncio.to_thread(apply_acks, ctx, group, member_id, body.topics))
        if closing:
            ctx.share_sessions.close(body.group_id, member_id)
        else:
            _deliver(ctx, await _fetch(ctx, group, member_id, body, set(session.partitions)), results)
    except StreamlabError as exc:
        return refused(t.ShareFetchResponse, error_of(exc).value, str(exc))
    return build(
        t.ShareFetchResponse,
        throttle_time=ZERO,
        error_code=error_code(0),
        acquisition_lock_timeout=millis(group.config.record_lock_ms),
        responses=_responses(ctx, t, results),
        node_endpoints=(),
    )


def _responses(ctx: ServerContext, t: Any, results: dict[Any, PartitionResult]) -> tuple[Any, ...]:
    leader = build(t.LeaderIdAndEpoch, leader_id=ctx.node_id, leader_epoch=0)

    def fields(index: int, r: PartitionResult) -> dict[str, Any]:
        acquired = tuple(build(t.AcquiredRecords, first_offset=first, last_offset=last, delivery_count=n)
                         for first, last, n in r.acquired)  # fmt: skip
        return {"partition_index": index, "error_code": error_code(r.error), "error_message": r.message,
                "acknowledge_error_code": r.ack_error, "acknowledge_error_message": r.ack_message,
                "current_leader": leader, "records": r.records, "acquired_records": acquired}  # fmt: skip

    return topic_responses(
        t.ShareFetchableTopicResponse,
        t.PartitionData,
        ((topic_id, [fields(index, r) for index, r in parts]) for topic_id, parts in by_topic_id(ctx, results).items()),
        topic_field="topic_id",
    )
