"""What the transaction handlers share: error codes by version, and the authorization check."""

from __future__ import annotations

from typing import Final

from streamlab.errors import ProducerFencedError
from streamlab.server.context import ConnectionInfo, ServerContext
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
