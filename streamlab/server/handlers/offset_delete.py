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
    denied_topics,
    group_allowed,
)
from streamlab.server.handlers._topic_responses import PartitionKey, partition_errors
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
        denied = denied_topics(ctx, conn, body.topics, Operation.READ)
        codes = {tp: TOPIC_AUTHORIZATION_FAILED for tp in wanted if tp.topic in denied}
        try:
            refused = await asyncio.to_thread(delete_offsets, ctx.broker, body.group_id,
                                              [tp for tp in wanted if tp not in codes])  # fmt: skip
            codes.update({tp: error_of(exc).value for tp, exc in refused.items()})
        except StreamlabError as exc:
            top = error_of(exc).value

    def code_of(key: PartitionKey) -> int:
        return codes.get(TopicPartition(*key), 0)

    topics = partition_errors(t.OffsetDeleteResponseTopic, t.OffsetDeleteResponsePartition, body.topics, code_of)
    return build(
        t.OffsetDeleteResponse, error_code=error_code(top), throttle_time=ZERO, topics=topics if not top else ()
    )
