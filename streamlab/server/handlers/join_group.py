"""JoinGroup: a member (re)joins, and waits for the next generation to open.

The answer comes when every member has rejoined, or the rebalance timeout has expelled
the ones that did not; it carries the generation, the chosen protocol, the leader, and,
for the leader only, every member's metadata, from which the leader's client computes the
assignment it sends in SyncGroup. From v4 a new member without a group.instance.id first
gets MEMBER_ID_REQUIRED with its member id, and rejoins with it. v0 has no rebalance
timeout: the session timeout serves as both.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.consumer_groups import check_not_consumer_protocol
from streamlab.errors import StreamlabError
from streamlab.groups.consumer_protocol import decode_subscription
from streamlab.groups.state import JoinRequest, JoinResult, MemberIdRequiredError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._groups import (
    CONSUMER_PROTOCOL,
    INVALID_SESSION_TIMEOUT,
    NONE,
    answer,
    client_host,
    group_refusal,
    millis_of,
    wait_limit,
    warn_if_malformed,
)
from streamlab.server.responses import ZERO, build, build_from, error_code, error_of, types_for

API_KEY = 11


def _answer(request: ParsedRequest, code: int, result: JoinResult | None = None, member_id: str | None = None) -> Any:
    """The response; ``member_id`` (else the request's) goes to a member without a result."""
    t = types_for(API_KEY, request.api_version)
    body: Any = request.body
    protocol = result.protocol if result is not None else None
    return build(
        t.JoinGroupResponse,
        throttle_time=ZERO,
        error_code=error_code(code),
        generation_id=result.generation if result is not None else -1,
        protocol_type=result.protocol_type if result is not None else None,
        # v7 made the protocol name nullable; before, "none" is the empty string
        protocol_name=protocol if protocol is not None or request.api_version >= 7 else "",
        leader=result.leader if result is not None else "",
        skip_assignment=result.skip_assignment if result is not None else False,
        member_id=result.member_id if result is not None else member_id if member_id is not None else body.member_id,
        members=tuple(
            build_from(t.JoinGroupResponseMember, m, "member_id", "group_instance_id", "metadata")
            for m in (result.members if result is not None else ())
        ),
    )


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    version = request.api_version
    refused = group_refusal(ctx, conn, body.group_id)
    if refused:
        return _answer(request, refused)
    session_ms = millis_of(body.session_timeout)
    rebalance_ms = millis_of(body.rebalance_timeout) if version >= 1 else session_ms
    if session_ms <= 0:
        return _answer(request, INVALID_SESSION_TIMEOUT)
    join = JoinRequest(
        client_id=request.client_id or conn.client_id,
        host=client_host(conn),
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=rebalance_ms if rebalance_ms > 0 else session_ms,
        protocols=tuple((p.name, bytes(p.metadata)) for p in body.protocols),
        protocol_type=body.protocol_type,
        group_instance_id=getattr(body, "group_instance_id", None),
        reason=getattr(body, "reason", None),
    )
    if join.protocol_type == CONSUMER_PROTOCOL:
        warn_if_malformed(conn, body.group_id, "subscription of protocol", join.protocols, decode_subscription)
    try:  # a consumer-protocol (KIP-848) group with members takes no classic member
        await asyncio.to_thread(check_not_consumer_protocol, ctx.broker, body.group_id)
    except StreamlabError as exc:
        return _answer(request, error_of(exc).value)
    group = ctx.broker.groups.group(body.group_id)
    pending = await asyncio.to_thread(group.join_wire, body.member_id, join, require_known_member_id=version >= 4)
    try:
        result = await answer(pending, wait_limit(group, join.rebalance_timeout_ms))
    except MemberIdRequiredError as exc:
        return _answer(request, exc.kafka_code, member_id=exc.member_id)
    except StreamlabError as exc:
        return _answer(request, error_of(exc).value)
    return _answer(request, NONE, result)
