"""EndTxn: commit or abort a transaction.

The answer comes once the decision and every partition's marker are durable and, on
commit, the transaction's group offsets are committed: a consumer that reads committed
data sees the transaction's records from then on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._txn import TRANSACTIONAL_ID_AUTHORIZATION_FAILED, txn_allowed, txn_error_code
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 26


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    code = 0
    if not txn_allowed(ctx, conn, body.transactional_id):
        code = TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    else:
        try:
            await asyncio.to_thread(
                ctx.transactions.end, body.transactional_id, body.producer_id, body.producer_epoch,
                commit=bool(body.committed),
            )  # fmt: skip
        except StreamlabError as exc:
            code = txn_error_code(exc, API_KEY, request.api_version)
    return build(t.EndTxnResponse, throttle_time=ZERO, error_code=error_code(code),
                 producer_id=-1, producer_epoch=-1)  # fmt: skip
