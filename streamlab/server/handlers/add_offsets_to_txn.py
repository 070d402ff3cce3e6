"""AddOffsetsToTxn: the transaction will commit offsets for a consumer group.

Offsets sent afterwards with TxnOffsetCommit become the group's committed offsets only
when the transaction commits (see :mod:`streamlab.broker.transactions`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import GROUP_AUTHORIZATION_FAILED, group_allowed
from streamlab.server.handlers._txn import TRANSACTIONAL_ID_AUTHORIZATION_FAILED, txn_allowed, txn_error_code
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 25


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    code = 0
    if not txn_allowed(ctx, conn, body.transactional_id):
        code = TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif not group_allowed(ctx, conn, body.group_id):
        code = GROUP_AUTHORIZATION_FAILED
    else:
        try:
            await asyncio.to_thread(
                ctx.transactions.add_offsets, body.transactional_id, body.producer_id, body.producer_epoch,
                body.group_id,
            )  # fmt: skip
        except StreamlabError as exc:
            code = txn_error_code(exc, API_KEY, request.api_version)
    return build(t.AddOffsetsToTxnResponse, throttle_time=ZERO, error_code=error_code(code))
