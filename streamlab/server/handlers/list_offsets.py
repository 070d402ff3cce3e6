"""ListOffsets: the earliest (-2) and latest (-1) offsets, and offsets by time.

-3 (v7+) asks for the record with the largest timestamp; ``isolation_level=read_committed``
(1) makes "latest" the last stable offset. The answers are :mod:`streamlab.broker.list_offsets`'.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.list_offsets import list_offset
from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import TOPIC_AUTHORIZATION_FAILED, Operation, denied_topics
from streamlab.server.handlers._topic_responses import topic_responses
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for

API_KEY = 2

LEADER_EPOCH = 0


def _lookup(
    ctx: ServerContext, topic: str, partition: int, timestamp: int, committed: bool = False
) -> tuple[int, int, int]:
    """(error code, offset, timestamp) for one partition."""
    try:
        return 0, *list_offset(ctx.broker, ctx.transactions, topic, partition, timestamp, committed=committed)
    except StreamlabError as exc:
        return error_of(exc).value, -1, -1


def _lookup_all(
    ctx: ServerContext, body: Any, denied: frozenset[str] = frozenset()
) -> list[tuple[str, list[tuple[int, tuple[int, int, int]]]]]:
    committed = getattr(body, "isolation_level", 0) == 1
    return [
        (topic.name, [(p.partition_index, (TOPIC_AUTHORIZATION_FAILED, -1, -1) if topic.name in denied
                       else _lookup(ctx, topic.name, p.partition_index, p.timestamp, committed))
                      for p in topic.partitions])
        for topic in body.topics
    ]  # fmt: skip


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    t = types_for(API_KEY, request.api_version)
    # Looking up by time may read Parquet segments: off the event loop.
    body: Any = request.body
    results = await asyncio.to_thread(_lookup_all, ctx, body, denied_topics(ctx, conn, body.topics, Operation.DESCRIBE))
    topics = topic_responses(
        t.ListOffsetsTopicResponse,
        t.ListOffsetsPartitionResponse,
        (
            (name, [{"partition_index": index, "error_code": error_code(code), "timestamp": timestamp, "offset": offset,
                     "leader_epoch": LEADER_EPOCH if code == 0 and offset >= 0 else -1}
                    for index, (code, offset, timestamp) in parts])
            for name, parts in results
        ),
    )  # fmt: skip
    return build(t.ListOffsetsResponse, throttle_time=ZERO, topics=topics)
