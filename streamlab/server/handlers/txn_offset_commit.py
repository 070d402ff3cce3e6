"""TxnOffsetCommit: a group's offsets, committed when (and only if) the transaction commits.

The group must have been added with AddOffsetsToTxn. Member id and generation (v3+) are
accepted and not checked against the group: the offsets land at commit time, when the
group may have moved on, as with Kafka's ``sendOffsetsToTransaction`` without group
metadata.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import TOPIC_AUTHORIZATION_FAILED, Operation, topic_allowed
from streamlab.server.handlers._groups import MAX_METADATA_CHARS, OFFSET_METADATA_TOO_LARGE
from streamlab.server.handlers._topic_responses import PartitionKey, every_partition, failing_the_rest, partition_errors
from streamlab.server.handlers._txn import txn_error_code, txn_refusal
from streamlab.server.responses import ZERO, build, types_for

API_KEY = 28

UNKNOWN_TOPIC_OR_PARTITION = 3


def _commit(ctx: ServerContext, conn: ConnectionInfo, body: Any, version: int) -> dict[PartitionKey, int]:
    wanted = [(topic.name, p) for topic in body.topics for p in topic.partitions]
    refused = txn_refusal(ctx, conn, body.transactional_id, body.group_id)
    if refused:
        return every_partition(body.topics, refused)
    codes: dict[PartitionKey, int] = {}
    offsets: dict[PartitionKey, tuple[int, str]] = {}
    for name, p in wanted:
        key = (name, p.partition_index)
        state = ctx.broker.topics.get(name)
        if not topic_allowed(ctx, conn, name, Operation.READ):
            codes[key] = TOPIC_AUTHORIZATION_FAILED
        elif state is None or not 0 <= p.partition_index < state.partitions:
            codes[key] = UNKNOWN_TOPIC_OR_PARTITION
        elif len(p.committed_metadata or "") > MAX_METADATA_CHARS:
            codes[key] = OFFSET_METADATA_TOO_LARGE
        else:
            codes[key] = 0
            offsets[key] = (int(p.committed_offset), p.committed_metadata or "")
    if offsets:
        try:
            ctx.transactions.commit_offsets(
                body.transactional_id, body.producer_id, body.producer_epoch, body.group_id, offsets
            )
        except StreamlabError as exc:
            return failing_the_rest(codes, txn_error_code(exc, API_KEY, version))
    return codes


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    codes = await asyncio.to_thread(_commit, ctx, conn, body, request.api_version)
    topics = partition_errors(t.TxnOffsetCommitResponseTopic, t.TxnOffsetCommitResponsePartition, body.topics,
                              codes.__getitem__)  # fmt: skip
    return build(t.TxnOffsetCommitResponse, throttle_time=ZERO, topics=topics)
