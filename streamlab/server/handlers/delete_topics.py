"""DeleteTopics: remove topics and their data.

v1-v5 name topics in ``topic_names``; v6 has ``topics`` entries with a name or a topic
id. streamlab gives out no topic ids, so a request by id gets UNKNOWN_TOPIC_ID.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker import topics
from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for
from streamlab.server.security import Operation, ResourceType

API_KEY = 20

UNKNOWN_TOPIC_ID = 100
TOPIC_AUTHORIZATION_FAILED = 29


def _delete(ctx: ServerContext, name: str) -> tuple[int, str | None]:
    try:
        topics.delete_topic(ctx.broker, name)
    except StreamlabError as exc:
        return error_of(exc).value, str(exc)
    ctx.producers.forget_topic(name)
    ctx.transactions.forget_topic(name)
    return 0, None


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    if hasattr(body, "topic_names"):
        wanted: list[tuple[str | None, Any]] = [(name, None) for name in body.topic_names]
    else:
        wanted = [(topic.name, topic.topic_id) for topic in body.topics]
    results = []
    for name, topic_id in wanted:
        code: int
        message: str | None
        if name is None:
            code, message = UNKNOWN_TOPIC_ID, f"no topic has id {topic_id}"
        elif not ctx.authorize(conn, Operation.DELETE, ResourceType.TOPIC, name):
            code, message = TOPIC_AUTHORIZATION_FAILED, f"no DELETE on topic {name!r}"
        else:
            code, message = await asyncio.to_thread(_delete, ctx, name)
        results.append(
            build(
                t.DeletableTopicResult,
                name=name,
                topic_id=topic_id,
                error_code=error_code(code),
                error_message=message,
            )
        )
    return build(t.DeleteTopicsResponse, throttle_time=ZERO, responses=tuple(results))
