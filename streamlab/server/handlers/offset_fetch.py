"""OffsetFetch: a group's committed offsets.

v1 names the partitions; from v2 a null topic list asks for every committed partition of
the group; v8 batches several groups. A partition without a committed offset answers -1
(and no error), as in Kafka. With ``require_stable`` (v7+), a partition whose offset an
unfinished transaction is about to commit answers UNSTABLE_OFFSET_COMMIT (the client
retries), so a consumer never starts from an offset a transaction is moving (KIP-447).
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.consumer_groups import consumer_groups
from streamlab.broker.offsets import committed
from streamlab.errors import StreamlabError
from streamlab.model.types import OffsetAndMetadata, TopicPartition
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import (
    GROUP_AUTHORIZATION_FAILED,
    TOPIC_AUTHORIZATION_FAILED,
    Operation,
    group_allowed,
    topic_allowed,
)
from streamlab.server.handlers._groups import NONE
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 9

NO_OFFSET = -1
NO_EPOCH = -1
UNSTABLE_OFFSET_COMMIT = 88

Answer = dict[str, list[tuple[int, OffsetAndMetadata | None]]]  # topic -> [(partition, committed)]


def _fetch(ctx: ServerContext, group_id: str, topics: Any) -> Answer:
    stored = committed(ctx.broker, group_id)
    if topics is None:
        out: Answer = {}
        for tp, om in sorted(stored.items()):
            out.setdefault(tp.topic, []).append((tp.partition, om))
        return out
    return {
        topic.name: [(int(p), stored.get(TopicPartition(topic.name, int(p)))) for p in topic.partition_indexes]
        for topic in topics
    }


def _unstable(ctx: ServerContext, group_id: str, require_stable: bool) -> frozenset[tuple[str, int]]:
    return ctx.transactions.pending_offsets(group_id) if require_stable else frozenset()


def _partition_code(name: str, partition: int, denied: frozenset[str], unstable: frozenset[tuple[str, int]]) -> int:
    if name in denied:
        return TOPIC_AUTHORIZATION_FAILED
    return UNSTABLE_OFFSET_COMMIT if (name, partition) in unstable else NONE


def _topics(
    t: Any, answer: Answer, *, v8: bool, denied: frozenset[str] = frozenset(),
    unstable: frozenset[tuple[str, int]] = frozenset(),
) -> tuple[Any, ...]:  # fmt: skip
    topic_type = t.OffsetFetchResponseTopics if v8 else t.OffsetFetchResponseTopic
    partition_type = t.OffsetFetchResponsePartitions if v8 else t.OffsetFetchResponsePartition
    return tuple(
        build(
            topic_type,
            name=name,
            partitions=tuple(
                build(
                    partition_type,
                    partition_index=p,
                    committed_offset=om.offset if om is not None else NO_OFFSET,
                    committed_leader_epoch=om.leader_epoch
                    if om is not None and om.leader_epoch is not None
                    else NO_EPOCH,
                    metadata=om.metadata if om is not None else "",
                    error_code=error_code(_partition_code(name, p, denied, unstable)),
                )
                for p, om in partitions
            ),
        )
        for name, partitions in answer.items()
    )


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    if request.api_version >= 8:
        answers = [(g.group_id, await _member_checked_fetch(ctx, conn, g)) for g in body.groups]
        return build(
            t.OffsetFetchResponse,
            throttle_time=ZERO,
            groups=tuple(
                build(
                    t.OffsetFetchResponseGroup,
                    group_id=group_id,
                    topics=_topics(
                        t, answer[0], v8=True, denied=answer[1], unstable=_unstable(ctx, group_id, body.require_stable)
                    ),
                    error_code=error_code(answer[2]),
                )
                for group_id, answer in answers
            ),
        )
    answer, denied, code = await _authorized_fetch(ctx, conn, body.group_id, body.topics)
    return build(
        t.OffsetFetchResponse, throttle_time=ZERO,
        topics=_topics(t, answer, v8=False, denied=denied,
                       unstable=_unstable(ctx, body.group_id, bool(getattr(body, "require_stable", False)))),
        error_code=error_code(code),
    )  # fmt: skip


async def _member_checked_fetch(
    ctx: ServerContext, conn: ConnectionInfo, group: Any
) -> tuple[Answer, frozenset[str], int]:
    """v9+: a member of a consumer-protocol (KIP-848) group names itself and its current
    epoch (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH otherwise, for the whole group)."""
    answer = await _authorized_fetch(ctx, conn, group.group_id, group.topics)
    member_id, epoch = getattr(group, "member_id", None), int(getattr(group, "member_epoch", -1))
    consumer_group = consumer_groups(ctx.broker).get(group.group_id)
    if answer[2] != NONE or consumer_group is None:
        return answer
    try:
        await asyncio.to_thread(consumer_group.check_member_epoch, member_id, epoch, what="offset fetch")
    except StreamlabError as exc:
        return {}, frozenset(), exc.kafka_code
    return answer


async def _authorized_fetch(
    ctx: ServerContext, conn: ConnectionInfo, group_id: str, topics: Any
) -> tuple[Answer, frozenset[str], int]:
    """(answer, topics answered TOPIC_AUTHORIZATION_FAILED, group error code), as Kafka:
    DESCRIBE on the group, then DESCRIBE on each topic; "all topics" drops denied ones."""
    if not group_allowed(ctx, conn, group_id, Operation.DESCRIBE):
        return {}, frozenset(), GROUP_AUTHORIZATION_FAILED
    answer = await asyncio.to_thread(_fetch, ctx, group_id, topics)
    denied = frozenset(name for name in answer if not topic_allowed(ctx, conn, name, Operation.DESCRIBE))
    if topics is None:
        return {name: parts for name, parts in answer.items() if name not in denied}, frozenset(), NONE
    return answer, denied, NONE
