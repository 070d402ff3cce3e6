"""SaslHandshake: the client names its SASL mechanism; the answer lists the enabled ones.

Only v1 is served for real: after it, the tokens travel in SaslAuthenticate requests.
v0 (raw tokens outside Kafka's framing, Kafka 0.10's protocol) is advertised because
librdkafka sends a handshake only to brokers whose range includes it, but every client of
this decade picks v1; a v0 handshake is answered ILLEGAL_SASL_STATE. So is any handshake
on a listener without SASL, as Kafka answers it.
"""

from __future__ import annotations

import logging
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.responses import build, error_code, error_of, types_for
from streamlab.server.security.sasl import authenticator_for

API_KEY = 17

ILLEGAL_SASL_STATE = 34
log = logging.getLogger(__name__)


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    security = ctx.security
    if security.users is None or request.api_version == 0:
        log.info("%s:%d: SaslHandshake v%d refused (%s)", conn.host, conn.port, request.api_version,
                 "SASL is not enabled" if security.users is None else "v0 raw tokens are not supported")  # fmt: skip
        conn.session.fail()
        return build(t.SaslHandshakeResponse, error_code=error_code(ILLEGAL_SASL_STATE), mechanisms=())
    try:
        conn.session.authenticator = authenticator_for(body.mechanism, security.users, security.mechanisms)
    except StreamlabError as exc:
        log.warning("%s:%d: %s", conn.host, conn.port, exc)
        return build(t.SaslHandshakeResponse, error_code=error_of(exc), mechanisms=security.mechanisms)
    return build(t.SaslHandshakeResponse, error_code=error_code(0), mechanisms=security.mechanisms)
