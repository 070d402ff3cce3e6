"""What the consumer-group handlers share (a helper: its name starts with ``_``).

The coordinator answers JoinGroup and SyncGroup with ``concurrent.futures.Future``\\ s that
resolve when the rebalance gets there; a handler awaits them on the event loop without
holding a thread. Short coordinator calls run in a worker thread: they take the group's
lock, and completing a rebalance writes its history to the catalog.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import TypeVar

from streamlab.errors import RebalanceInProgressError
from streamlab.groups.consumer_protocol import ConsumerProtocolError
from streamlab.groups.group import Group
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import GROUP_AUTHORIZATION_FAILED, group_allowed

T = TypeVar("T")

log = logging.getLogger("streamlab.server")
CONSUMER_PROTOCOL = "consumer"

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
ILLEGAL_GENERATION = 22
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
INVALID_REQUEST = 42

# Past the rebalance timeout the coordinator has answered every wait; this is a safety net.
ANSWER_MARGIN_S = 5.0
MAX_METADATA_CHARS = 4096  # Kafka's offset.metadata.max.bytes


async def answer(future: Future[T], timeout_s: float) -> T:
    """The coordinator's answer (or its error); REBALANCE_IN_PROGRESS after ``timeout_s``,
    which is never expected: the coordinator answers within the rebalance timeout."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except TimeoutError:
        raise RebalanceInProgressError(f"no answer from the group coordinator within {timeout_s:.0f}s") from None


def wait_limit(group: Group, own_ms: int = 0) -> float:
    """How long a JoinGroup or SyncGroup may wait: the group's rebalance timeout, and a margin."""
    return max(group.rebalance_timeout_s(), own_ms / 1000) + ANSWER_MARGIN_S


def millis_of(value: datetime.timedelta) -> int:
    return round(value.total_seconds() * 1000)


def client_host(conn: ConnectionInfo) -> str:
    return f"/{conn.host}"  # as Kafka shows it


def existing_group(ctx: ServerContext, group_id: str) -> Group | None:
    return ctx.broker.groups.groups().get(group_id)


def group_refusal(ctx: ServerContext, conn: ConnectionInfo, group_id: str) -> int:
    """The error code refusing a member's request to a classic group (no group id, or no
    READ on the group), or NONE."""
    if not group_id:
        return INVALID_GROUP_ID
    if not group_allowed(ctx, conn, group_id):
        return GROUP_AUTHORIZATION_FAILED
    return NONE


def warn_if_malformed(
    conn: ConnectionInfo,
    group_id: str,
    what: str,
    payloads: Iterable[tuple[str, bytes]],
    decode: Callable[[bytes], object],
) -> None:
    """Log one warning line if a payload of a ``consumer`` group is not consumer protocol.

    Kafka's coordinator passes these bytes on as opaque (the leader's client reads them) and
    only warns that it cannot tell the group's subscriptions, so the request is still served;
    the warning names the client that sends garbage.
    """
    for name, payload in payloads:
        try:
            decode(payload)
        except ConsumerProtocolError as exc:
            log.warning(
                "%s:%d: group %r: %s %r is not consumer protocol (%s); passed on as opaque bytes, as Kafka does",
                conn.host, conn.port, group_id, what, name, exc,
            )  # fmt: skip
            return
