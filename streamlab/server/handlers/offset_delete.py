"""OffsetDelete: forget a group's committed offsets for some partitions (``kafka-consumer-groups --delete-offsets``).

Needs DELETE on the group and READ on each topic. A partition of a topic the group's
members currently consume is GROUP_SUBSCRIBED_TO_TOPIC; an unknown group is
GROUP_ID_NOT_FOUND for the whole request, as in Kafka.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.group_admin import delete_offsets
from streamlab.errors import StreamlabError
from streamlab.model.types import TopicPartition
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import (
    GROUP_AUTHORIZATION_FAILED,
    TOPIC_AUTHORIZATION_FAILED,
    Operation,
    group_allowed,
    topic_allowed,
)
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for

API_KEY = 47


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    wanted = [TopicPartition(topic.name, p.partition_index) for topic in body.topics for p in topic.partitions]
    codes: dict[TopicPartition, int] = {}
    top = 0
    if not group_allowed(ctx, conn, body.group_id, Operation.DELETE):
        top = GROUP_AUTHORIZATION_FAILED
    else:
        codes = {
            tp: TOPIC_AUTHORIZATION_FAILED for tp in wanted if not topic_allowed(ctx, conn, tp.topic, Operation.READ)
        }
        try:
            refused = await asyncio.to_thread(delete_offsets, ctx.broker, body.group_id,
                                              [tp for tp in wanted if tp not in codes])  # fmt: skip
            codes.update({tp: error_of(exc).value for tp, exc in refused.items()})
        except StreamlabError as exc:
            top = error_of(exc).value
    topics = tuple(
        build(
            t.OffsetDeleteResponseTopic,
            name=topic.name,
            partitions=tuple(
                build(
                    t.OffsetDeleteResponsePartition,
                    partition_index=p.partition_index,
                    error_code=error_code(codes.get(TopicPartition(topic.name, p.partition_index), 0)),
                )
                for p in topic.partitions
            ),
        )
        for topic in body.topics
    )
    return build(
        t.OffsetDeleteResponse, error_code=error_code(top), throttle_time=ZERO, topics=topics if not top else ()
    )
