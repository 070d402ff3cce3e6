"""InitProducerId: a producer id for an idempotent or transactional producer.

Without a transactional id every request gets a new producer id with epoch 0, as Kafka
does. With one, the transaction coordinator (:mod:`streamlab.broker.transactions`) keeps
the id's producer id and bumps its epoch, fencing the previous producer and aborting the
transaction it left open; ``transaction_timeout`` sets ``transaction.timeout.ms``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import CLUSTER_AUTHORIZATION_FAILED, Operation, ResourceType
from streamlab.server.handlers._txn import TRANSACTIONAL_ID_AUTHORIZATION_FAILED, txn_allowed, txn_error_code
from streamlab.server.responses import ZERO, build, error_code, types_for
from streamlab.server.security.acls import CLUSTER_NAME

API_KEY = 22


def _answer(request: ParsedRequest, code: int, producer_id: int = -1, epoch: int = -1) -> Any:
    t = types_for(API_KEY, request.api_version)
    return build(t.InitProducerIdResponse, throttle_time=ZERO, error_code=error_code(code),
                 producer_id=producer_id, producer_epoch=epoch)  # fmt: skip


async def _transactional(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    pid, epoch, code = -1, -1, 0
    if not txn_allowed(ctx, conn, body.transactional_id):
        code = TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    else:
        timeout_ms = int(body.transaction_timeout.total_seconds() * 1000)
        try:
            # Aborting a previous transaction writes markers and fsyncs: off the event loop.
            pid, epoch = await asyncio.to_thread(
                ctx.transactions.init_producer,
                body.transactional_id,
                timeout_ms,
                producer_id=int(getattr(body, "producer_id", -1)),
                epoch=int(getattr(body, "producer_epoch", -1)),
            )
        except StreamlabError as exc:
            code = txn_error_code(exc, API_KEY, request.api_version)
    return _answer(request, code, pid, epoch)


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    if body.transactional_id is not None:
        return await _transactional(ctx, request, conn)
    # KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic, allows it.
    authorizer, principal = ctx.authorizer, conn.session.principal
    if authorizer is not None and not (
        authorizer.authorize(principal, conn.host, Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER_NAME)
        or authorizer.authorize_any(principal, conn.host, Operation.WRITE, ResourceType.TOPIC)
    ):
        return _answer(request, CLUSTER_AUTHORIZATION_FAILED)
    # A new block of ids is reserved with an fsync now and then: off the event loop.
    producer_id, epoch = await asyncio.to_thread(ctx.producers.new_producer_id)
    return _answer(request, 0, producer_id, epoch)
