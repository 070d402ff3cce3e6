"""AddOffsetsToTxn: the transaction will commit offsets for a consumer group.

Offsets sent afterwards with TxnOffsetCommit become the group's committed offsets only
when the transaction commits (see :mod:`streamlab.broker.transactions`).
"""

from __future__ import annotations

import functools
from typing import Any

from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._txn import coordinator_error, txn_refusal
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 25


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    add = functools.partial(ctx.transactions.add_offsets, body.transactional_id, body.producer_id,
                            body.producer_epoch, body.group_id)  # fmt: skip
    code = txn_refusal(ctx, conn, body.transactional_id, body.group_id) or await coordinator_error(request, add)
    return build(t.AddOffsetsToTxnResponse, throttle_time=ZERO, error_code=error_code(code))
