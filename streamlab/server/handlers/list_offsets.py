"""ListOffsets: the earliest (-2) and latest (-1) offsets, and offsets by time.

For a timestamp, the answer is the earliest offset whose record has a timestamp at least
that large, with that record's timestamp; if there is none the offset is -1, as in Kafka
(clients read it as "no such record"). -3 (v7+) asks for the record with the largest
timestamp. With ``isolation_level=read_committed`` (1) "latest" is the last stable
offset: the first offset of the oldest transaction still open on the partition.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import TOPIC_AUTHORIZATION_FAILED, Operation, topic_allowed
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for
from streamlab.storage.base import PartitionLog

API_KEY = 2

LATEST, EARLIEST, MAX_TIMESTAMP = -1, -2, -3
LEADER_EPOCH = 0


def _record_timestamp(log: PartitionLog, offset: int) -> int:
    table = log.read(offset, 1)
    return int(table.column("timestamp").cast(pa.int64())[0].as_py()) if table.num_rows else -1


def _max_timestamp(log: PartitionLog) -> tuple[int, int]:
    candidates = [s.max_timestamp for s in log.sealed_segments()]
    active = log.active_table()
    if active.num_rows:
        candidates.append(pc.max(active.column("timestamp").cast(pa.int64())).as_py())
    if not candidates:
        return -1, -1
    newest = max(candidates)
    offset = log.offset_for_timestamp(newest)
    return (-1, -1) if offset is None else (offset, newest)


def _lookup(
    ctx: ServerContext, topic: str, partition: int, timestamp: int, committed: bool = False
) -> tuple[int, int, int]:
    """(error code, offset, timestamp) for one partition."""
    try:
        log = ctx.broker.log(topic, partition)
    except StreamlabError as exc:
        return error_of(exc).value, -1, -1
    if timestamp == LATEST:
        if committed:
            return 0, ctx.transactions.last_stable_offset(topic, partition, log.high_watermark), -1
        return 0, log.high_watermark, -1
    if timestamp == EARLIEST:
        return 0, log.log_start_offset, -1
    if timestamp == MAX_TIMESTAMP:
        return 0, *_max_timestamp(log)
    offset = log.offset_for_timestamp(timestamp)
    if offset is None or offset >= log.high_watermark:
        return 0, -1, -1
    offset = max(offset, log.log_start_offset)
    return 0, offset, _record_timestamp(log, offset)


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
    denied = frozenset(t.name for t in body.topics if not topic_allowed(ctx, conn, t.name, Operation.DESCRIBE))
    results = await asyncio.to_thread(_lookup_all, ctx, body, denied)
    return build(
        t.ListOffsetsResponse,
        throttle_time=ZERO,
        topics=tuple(
            build(
                t.ListOffsetsTopicResponse,
                name=name,
                partitions=tuple(
                    build(
                        t.ListOffsetsPartitionResponse,
                        partition_index=index,
                        error_code=error_code(code),
                        timestamp=timestamp,
                        offset=offset,
                        leader_epoch=LEADER_EPOCH if code == 0 and offset >= 0 else -1,
                    )
                    for index, (code, offset, timestamp) in parts
                ),
            )
            for name, parts in results
        ),
    )
