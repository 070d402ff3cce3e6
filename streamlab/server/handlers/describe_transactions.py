"""DescribeTransactions: the state, producer and partitions of transactional ids.

An id the coordinator does not know gets TRANSACTIONAL_ID_NOT_FOUND. Kafka wants DESCRIBE
on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise).
"""

from __future__ import annotations

import datetime
from typing import Any

from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._txn import TRANSACTIONAL_ID_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_NOT_FOUND
from streamlab.server.responses import ZERO, build, error_code, millis, types_for
from streamlab.server.security import Operation, ResourceType

API_KEY = 65

_EPOCH = datetime.datetime.fromtimestamp(0, tz=datetime.UTC)


def _state(ctx: ServerContext, conn: ConnectionInfo, t: Any, tid: str) -> Any:
    txn = ctx.transactions.describe(tid)
    code = 0
    if not ctx.authorize(conn, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, tid):
        code, txn = TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None
    elif txn is None:
        code = TRANSACTIONAL_ID_NOT_FOUND
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(txn.partitions if txn is not None else ()):
        by_topic.setdefault(topic, []).append(partition)
    started = -1 if txn is None else txn.started_ms
    return build(
        t.TransactionState,
        error_code=error_code(code),
        transactional_id=tid,
        transaction_state="" if txn is None else txn.state,
        transaction_timeout=millis(0 if txn is None else txn.timeout_ms),
        # Kafka sends -1 when no transaction ever started; kio-based readers refuse negative
        # timestamps, so "never" is the epoch here.
        transaction_start_time=_EPOCH + datetime.timedelta(milliseconds=max(started, 0)),
        producer_id=-1 if txn is None else txn.producer_id,
        producer_epoch=-1 if txn is None else txn.epoch,
        topics=tuple(build(t.TopicData, topic=topic, partitions=tuple(parts)) for topic, parts in by_topic.items()),
    )


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    return build(
        t.DescribeTransactionsResponse,
        throttle_time=ZERO,
        transaction_states=tuple(_state(ctx, conn, t, tid) for tid in body.transactional_ids),
    )
