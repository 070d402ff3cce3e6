"""InitProducerId: a producer id for an idempotent producer.

Every request gets a new producer id with epoch 0 (as Kafka does for producers without a
transactional id; the id/epoch fields of v3+ only matter to transactional producers).
Transactions are not supported: a transactional id gets INVALID_REQUEST.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 22

INVALID_REQUEST = 42


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    t = types_for(API_KEY, request.api_version)
    body: Any = request.body
    if body.transactional_id is not None:
        return build(t.InitProducerIdResponse, throttle_time=ZERO, error_code=error_code(INVALID_REQUEST),
                     producer_id=-1, producer_epoch=-1)  # fmt: skip
    # A new block of ids is reserved with an fsync now and then: off the event loop.
    producer_id, epoch = await asyncio.to_thread(ctx.producers.new_producer_id)
    return build(
        t.InitProducerIdResponse,
        throttle_time=ZERO,
        error_code=error_code(0),
        producer_id=producer_id,
        producer_epoch=epoch,
    )
