"""ListTransactions: the transactional ids the coordinator knows, with filters.

Filters: states (names Kafka uses; unknown ones are echoed in ``unknown_state_filters``),
producer ids, a minimum duration of open transactions (v1+) and a regular expression on
the id (v2+). Only ids the principal may DESCRIBE are listed.
"""

from __future__ import annotations

import re
from typing import Any

from streamlab.broker.transaction_state import STATES
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.responses import ZERO, build, build_from, error_code, types_for
from streamlab.server.security import Operation, ResourceType

API_KEY = 66

INVALID_REGULAR_EXPRESSION = 128


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    unknown = tuple(s for s in body.state_filters if s not in STATES)
    pattern = getattr(body, "transactional_id_pattern", None)
    try:
        if pattern:
            re.compile(pattern)
    except re.error:
        return build(t.ListTransactionsResponse, throttle_time=ZERO, error_code=error_code(INVALID_REGULAR_EXPRESSION),
                     unknown_state_filters=(), transaction_states=())  # fmt: skip
    txns = ctx.transactions.list_transactions(
        states=[s for s in body.state_filters if s in STATES],
        producer_ids=[int(p) for p in body.producer_id_filters],
        pattern=pattern or None,
        min_duration_ms=int(getattr(body, "duration_filter", -1)),
    )
    if body.state_filters and not [s for s in body.state_filters if s in STATES]:
        txns = []  # only unknown states asked for: nothing matches
    return build(
        t.ListTransactionsResponse,
        throttle_time=ZERO,
        error_code=error_code(0),
        unknown_state_filters=unknown,
        transaction_states=tuple(
            build_from(t.TransactionState, x, "transactional_id", "producer_id", transaction_state=x.state)
            for x in txns
            if ctx.authorize(conn, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, x.transactional_id)
        ),
    )
