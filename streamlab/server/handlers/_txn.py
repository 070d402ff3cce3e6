"""What the transaction handlers share: error codes by version, and the authorization check."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from streamlab.errors import ProducerFencedError, StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import GROUP_AUTHORIZATION_FAILED, group_allowed
from streamlab.server.responses import error_of
from streamlab.server.security import Operation, ResourceType

INVALID_PRODUCER_EPOCH: Final = 47
TRANSACTIONAL_ID_AUTHORIZATION_FAILED: Final = 53
TRANSACTIONAL_ID_NOT_FOUND: Final = 105

# The first version of each API that may answer PRODUCER_FENCED (KIP-588); older clients
# know only INVALID_PRODUCER_EPOCH for a fenced producer.
_FENCED_FROM: Final[dict[int, int]] = {22: 4, 24: 2, 25: 2, 26: 2, 28: 3}


def txn_error_code(exc: BaseException, api_key: int, api_version: int) -> int:
    """The Kafka error code of a coordinator error, as this API version spells it."""
    if isinstance(exc, ProducerFencedError) and api_version < _FENCED_FROM.get(api_key, 0):
        return INVALID_PRODUCER_EPOCH
    return error_of(exc).value


def txn_allowed(ctx: ServerContext, conn: ConnectionInfo, transactional_id: str) -> bool:
    """Kafka wants WRITE on the transactional id for every transactional request."""
    return ctx.authorize(conn, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)


def txn_refusal(ctx: ServerContext, conn: ConnectionInfo, transactional_id: str, group_id: str | None = None) -> int:
    """The error code refusing a transactional request (WRITE on the transactional id, and
    READ on ``group_id`` for the requests that commit a group's offsets), or 0."""
    if not txn_allowed(ctx, conn, transactional_id):
        return TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    if group_id is not None and not group_allowed(ctx, conn, group_id):
        return GROUP_AUTHORIZATION_FAILED
    return 0


async def coordinator_error(request: ParsedRequest, work: Callable[[], object]) -> int:
    """Run a coordinator call in a worker thread (it writes and fsyncs): 0, or the error
    code of its failure as ``request``'s API version spells it."""
    try:
        await asyncio.to_thread(work)
    except StreamlabError as exc:
        return txn_error_code(exc, request.api_key, request.api_version)
    return 0
