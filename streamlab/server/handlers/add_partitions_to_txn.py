"""AddPartitionsToTxn: the partitions a transactional producer is about to write to.

v0-v3 (what clients send) name one transaction. v4+ (KIP-890 part 1) batch several
transactions, each either adding partitions or, with ``verify_only``, asking whether
they are already part of the ongoing transaction (a partition that is not gets
INVALID_TXN_STATE); the request-level error code stays NONE. Either way the whole set of
one transaction is checked before any of it is added: a partition of an unknown topic
gets UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as Kafka does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import TOPIC_AUTHORIZATION_FAILED, Operation, topic_allowed
from streamlab.server.handlers._txn import TRANSACTIONAL_ID_AUTHORIZATION_FAILED, txn_allowed, txn_error_code
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 24

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TXN_STATE = 48
OPERATION_NOT_ATTEMPTED = 55

Codes = dict[tuple[str, int], int]


def _add(ctx: ServerContext, conn: ConnectionInfo, version: int, txn: Any, verify_only: bool) -> Codes:
    """The error code of each partition of one transaction's request."""
    topics = txn.topics if version >= 4 else txn.v3_and_below_topics
    wanted = [(topic.name, int(p)) for topic in topics for p in topic.partitions]
    tid = txn.transactional_id if version >= 4 else txn.v3_and_below_transactional_id
    pid = txn.producer_id if version >= 4 else txn.v3_and_below_producer_id
    epoch = txn.producer_epoch if version >= 4 else txn.v3_and_below_producer_epoch
    if not txn_allowed(ctx, conn, tid):
        return dict.fromkeys(wanted, TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    codes: Codes = {}
    for topic, partition in wanted:
        if not topic_allowed(ctx, conn, topic, Operation.WRITE):
            codes[(topic, partition)] = TOPIC_AUTHORIZATION_FAILED
            continue
        state = ctx.broker.topics.get(topic)
        if state is None or not 0 <= partition < state.partitions:
            codes[(topic, partition)] = UNKNOWN_TOPIC_OR_PARTITION
    if codes:
        return {tp: codes.get(tp, OPERATION_NOT_ATTEMPTED) for tp in wanted}
    try:
        if verify_only:
            added = ctx.transactions.in_transaction(tid, pid, epoch, wanted)
            return {tp: 0 if tp in added else INVALID_TXN_STATE for tp in wanted}
        ctx.transactions.add_partitions(tid, pid, epoch, wanted)
    except StreamlabError as exc:
        return dict.fromkeys(wanted, txn_error_code(exc, API_KEY, version))
    return dict.fromkeys(wanted, 0)


def _topic_results(t: Any, codes: Codes) -> tuple[Any, ...]:
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for (topic, partition), code in codes.items():
        by_topic.setdefault(topic, []).append((partition, code))
    return tuple(
        build(
            t.AddPartitionsToTxnTopicResult,
            name=topic,
            results_by_partition=tuple(
                build(t.AddPartitionsToTxnPartitionResult, partition_index=p, partition_error_code=error_code(c))
                for p, c in parts
            ),
        )
        for topic, parts in by_topic.items()
    )


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    version = request.api_version
    t = types_for(API_KEY, version)
    if version < 4:
        codes = await asyncio.to_thread(_add, ctx, conn, version, body, False)
        return build(t.AddPartitionsToTxnResponse, throttle_time=ZERO,
                     results_by_topic_v3_and_below=_topic_results(t, codes))  # fmt: skip
    results = []
    for txn in body.transactions:
        codes = await asyncio.to_thread(_add, ctx, conn, version, txn, bool(txn.verify_only))
        results.append(build(t.AddPartitionsToTxnResult, transactional_id=txn.transactional_id,
                             topic_results=_topic_results(t, codes)))  # fmt: skip
    return build(t.AddPartitionsToTxnResponse, throttle_time=ZERO, error_code=error_code(0),
                 results_by_transaction=tuple(results))  # fmt: skip
