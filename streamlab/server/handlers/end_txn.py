"""EndTxn: commit or abort a transaction.

The answer comes once the decision and every partition's marker are durable and, on
commit, the transaction's group offsets are committed: a consumer that reads committed
data sees the transaction's records from then on.
"""

from __future__ import annotations

import functools
from typing import Any

from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._txn import coordinator_error, txn_refusal
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 26


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    end = functools.partial(ctx.transactions.end, body.transactional_id, body.producer_id, body.producer_epoch,
                            commit=bool(body.committed))  # fmt: skip
    code = txn_refusal(ctx, conn, body.transactional_id) or await coordinator_error(request, end)
    return build(t.EndTxnResponse, throttle_time=ZERO, error_code=error_code(code),
                 producer_id=-1, producer_epoch=-1)  # fmt: skip
