"""SaslAuthenticate: one SASL token each way, after a SaslHandshake v1.

A failed exchange is answered SASL_AUTHENTICATION_FAILED with a message that does not
say whether the user or the password was wrong, logged as one warning line, and the
connection is closed at its next request (as Kafka closes it). Failures are answered after
100 ms, Kafka's ``connection.failed.authentication.delay.ms``. v1+ report the session
lifetime: 0, no re-authentication required (Kafka's default ``connections.max.reauth.ms``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from streamlab.errors import AuthenticationError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers.sasl_handshake import ILLEGAL_SASL_STATE
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for

API_KEY = 36

log = logging.getLogger(__name__)
# Kafka's connection.failed.authentication.delay.ms: a failure is answered this late, which
# slows password guessing and clients reconnecting in a tight loop.
FAILED_AUTHENTICATION_DELAY_S = 0.1


def _answer(request: ParsedRequest, code: int, message: str | None, token: bytes = b"") -> Any:
    """The response: v1+ report a session lifetime of 0 (no re-authentication required)."""
    t = types_for(API_KEY, request.api_version)
    return build(t.SaslAuthenticateResponse, error_code=error_code(code), error_message=message, auth_bytes=token,
                 session_lifetime=ZERO)  # fmt: skip


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    session = conn.session
    auth = session.authenticator
    if auth is None or auth.done:
        session.fail()
        log.warning("%s:%d: SaslAuthenticate without a SaslHandshake first", conn.host, conn.port)
        return _answer(request, ILLEGAL_SASL_STATE, "SaslAuthenticate must follow a SaslHandshake")
    try:
        # PLAIN and SCRAM derive keys (PBKDF2): keep that work off the event loop.
        token = await asyncio.to_thread(auth.step, body.auth_bytes)
        if auth.done and session.authenticated and auth.principal != session.principal:
            raise AuthenticationError("re-authentication cannot change the principal")
    except AuthenticationError as exc:
        session.authenticator = None
        session.fail()
        log.warning("%s:%d: SASL %s authentication failed for user %r: %s",
                    conn.host, conn.port, auth.mechanism, auth.user, exc)  # fmt: skip
        await asyncio.sleep(FAILED_AUTHENTICATION_DELAY_S)
        return _answer(request, error_of(exc).value, str(exc))
    if auth.principal is not None:
        session.principal, session.authenticated, session.authenticator = auth.principal, True, None
        log.info("%s:%d: authenticated as %s with SASL %s", conn.host, conn.port, auth.principal, auth.mechanism)
    return _answer(request, 0, None, token)
