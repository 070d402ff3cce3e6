"""OffsetFetch: a group's committed offsets.

v1 names the partitions; from v2 a null topic list asks for every committed partition of
the group; v8 batches several groups. A partition without a committed offset answers -1
(and no error), as in Kafka. Offsets are not transactional here, so ``require_stable``
needs no waiting.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.offsets import committed
from streamlab.model.types import OffsetAndMetadata, TopicPartition
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._groups import NONE
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 9

NO_OFFSET = -1
NO_EPOCH = -1

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


def _topics(t: Any, answer: Answer, *, v8: bool) -> tuple[Any, ...]:
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
                    committed_leader_epoch=NO_EPOCH,
                    metadata=om.metadata if om is not None else "",
                    error_code=error_code(NONE),
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
        answers = [(g.group_id, await asyncio.to_thread(_fetch, ctx, g.group_id, g.topics)) for g in body.groups]
        return build(
            t.OffsetFetchResponse,
            throttle_time=ZERO,
            groups=tuple(
                build(
                    t.OffsetFetchResponseGroup,
                    group_id=group_id,
                    topics=_topics(t, answer, v8=True),
                    error_code=error_code(NONE),
                )
                for group_id, answer in answers
            ),
        )
    answer = await asyncio.to_thread(_fetch, ctx, body.group_id, body.topics)
    return build(
        t.OffsetFetchResponse, throttle_time=ZERO, topics=_topics(t, answer, v8=False), error_code=error_code(NONE)
    )
