"""CreatePartitions: grow a topic to a new partition count (Kafka never shrinks one).

New partitions get no records from old keys: as in Kafka, keyed records sent after the
change may land in another partition than before.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from streamlab.broker import topics
from streamlab.errors import InvalidPartitionsError, StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import TOPIC_AUTHORIZATION_FAILED, Operation, topic_allowed
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for

API_KEY = 37

INVALID_REQUEST = 42
INVALID_REPLICA_ASSIGNMENT = 39


def _grow(ctx: ServerContext, topic: Any, validate_only: bool) -> tuple[int, str | None]:
    if topic.assignments and any(list(a.broker_ids) != [ctx.node_id] for a in topic.assignments):
        return INVALID_REPLICA_ASSIGNMENT, f"every replica must be broker {ctx.node_id}"
    try:
        if validate_only:
            current = ctx.broker.topic(topic.name).partitions
            if not current < topic.count <= topics.MAX_PARTITIONS:
                raise InvalidPartitionsError(
                    f"topic {topic.name!r} has {current} partitions; the new count must be larger, got {topic.count}"
                )
        else:
            topics.create_partitions(ctx.broker, topic.name, topic.count)
    except StreamlabError as exc:
        return error_of(exc).value, str(exc)
    return 0, None


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    counts = Counter(topic.name for topic in body.topics)
    results = []
    for topic in body.topics:
        code: int
        message: str | None
        if counts[topic.name] > 1:
            code, message = INVALID_REQUEST, "topic named more than once in one request"
        elif not topic_allowed(ctx, conn, topic.name, Operation.ALTER):
            code, message = TOPIC_AUTHORIZATION_FAILED, f"no ALTER on topic {topic.name!r}"
        else:
            code, message = await asyncio.to_thread(_grow, ctx, topic, body.validate_only)
        results.append(
            build(t.CreatePartitionsTopicResult, name=topic.name, error_code=error_code(code), error_message=message)
        )
    return build(t.CreatePartitionsResponse, throttle_time=ZERO, results=tuple(results))
