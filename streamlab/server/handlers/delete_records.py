"""DeleteRecords: move partitions' log start offsets forward (``kafka-delete-records``).

Each partition's log start becomes the given offset (-1: the high watermark), durably
(:func:`streamlab.broker.delete_records.delete_records`); records below it are never
served again and segments wholly below it are removed. The answer carries the new low watermark. An offset
past the high watermark is OFFSET_OUT_OF_RANGE, as in Kafka; DELETE on the topic is needed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.delete_records import delete_records
from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import TOPIC_AUTHORIZATION_FAILED, Operation, topic_allowed
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for

API_KEY = 21


def _delete(ctx: ServerContext, topic: str, partition: int, offset: int) -> tuple[int, int]:
    """(error code, low watermark) for one partition."""
    try:
        return 0, delete_records(ctx.broker, topic, partition, offset)
    except StreamlabError as exc:
        return error_of(exc).value, -1


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    topics = []
    for topic in body.topics:
        allowed = topic_allowed(ctx, conn, topic.name, Operation.DELETE)
        partitions = []
        for p in topic.partitions:
            if not allowed:
                code, low = TOPIC_AUTHORIZATION_FAILED, -1
            else:
                # Moving the log start commits to the catalog and removes files: off the loop.
                code, low = await asyncio.to_thread(_delete, ctx, topic.name, p.partition_index, p.offset)
            partitions.append(build(t.DeleteRecordsPartitionResult, partition_index=p.partition_index,
                                    low_watermark=low, error_code=error_code(code)))  # fmt: skip
        topics.append(build(t.DeleteRecordsTopicResult, name=topic.name, partitions=tuple(partitions)))
    if topics:
        ctx.data.wake_all()  # long-polling fetches at offsets now gone answer at once
    return build(t.DeleteRecordsResponse, throttle_time=ZERO, topics=tuple(topics))
