"""CreatePartitions: grow a topic to a new partition count (Kafka never shrinks one).

New partitions get no records from old keys: as in Kafka, keyed records sent after the
change may land in another partition than before.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from streamlab.broker import topics
from streamlab.errors import InvalidPartitionsError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._admin_outcomes import NAMED_TWICE, Outcome, check_replicas, named_twice, outcome
from streamlab.server.handlers._authz import TOPIC_AUTHORIZATION_FAILED, Operation, topic_allowed
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 37


def _grow(ctx: ServerContext, topic: Any, validate_only: bool) -> None:
    if topic.assignments:
        check_replicas(ctx.node_id, topic.assignments)
    if validate_only:
        current = ctx.broker.topic(topic.name).partitions
        if not current < topic.count <= topics.MAX_PARTITIONS:
            raise InvalidPartitionsError(
                f"topic {topic.name!r} has {current} partitions; the new count must be larger, got {topic.count}"
            )
    else:
        topics.create_partitions(ctx.broker, topic.name, topic.count)


async def _outcome(
    ctx: ServerContext, conn: ConnectionInfo, topic: Any, twice: frozenset[str], validate_only: bool
) -> Outcome:
    if topic.name in twice:
        return NAMED_TWICE
    if not topic_allowed(ctx, conn, topic.name, Operation.ALTER):
        return TOPIC_AUTHORIZATION_FAILED, f"no ALTER on topic {topic.name!r}"
    return await asyncio.to_thread(outcome, functools.partial(_grow, ctx, topic, validate_only))


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    twice = named_twice(body.topics)
    outcomes = [await _outcome(ctx, conn, topic, twice, body.validate_only) for topic in body.topics]
    t = types_for(API_KEY, request.api_version)
    results = tuple(
        build(t.CreatePartitionsTopicResult, name=topic.name, error_code=error_code(code), error_message=message)
        for topic, (code, message) in zip(body.topics, outcomes, strict=True)
    )
    return build(t.CreatePartitionsResponse, throttle_time=ZERO, results=results)
