"""Request dispatch: a frame parsed, admitted, handed to its API's handler, and answered.

* A malformed frame, or an unsupported version of anything but ApiVersions, closes the
  connection, as Kafka does; ApiVersions at an unknown version is answered with a v0
  UNSUPPORTED_VERSION body that lists the supported ranges; an API this broker does not
  offer at all is answered with UNSUPPORTED_VERSION everywhere and a warning naming it
  (:mod:`.unsupported`), so its client fails at once instead of reconnecting and retrying.
* With SASL on, only ApiVersions and the SASL handshake are served before authentication,
  and nothing after a failed one (Kafka closes the connection too).
* A handler's bug closes the connection: Kafka answers UNKNOWN_SERVER_ERROR, which needs a
  per-API error body; closing makes every client retry on a new connection.

:func:`respond` raises :class:`Close` to end the connection; a Deferred body (a Produce
being stored) is answered as a future, which the connection awaits in request order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable
from typing import Any

from kio.schema.errors import ErrorCode

from streamlab.protocol.framing import (
    API_NAMES,
    SUPPORTED_APIS,
    InvalidRequestError,
    ParsedRequest,
    ProtocolError,
    UnsupportedVersionError,
    api_versions_response,
    encode_response,
    encode_response_parts,
)
from streamlab.server.context import CloseConnection, ConnectionInfo, Deferred, Encoded, ServerContext
from streamlab.server.handlers import HANDLERS
from streamlab.server.requests import parse
from streamlab.server.unsupported import refusal

log = logging.getLogger("streamlab.server")

_API_VERSIONS = 18
_BEFORE_AUTHENTICATION = frozenset({_API_VERSIONS, 17, 36})  # + SaslHandshake, SaslAuthenticate
Response = bytes | list[bytes]  # one buffer, or parts sent one after another
Answer = Response | None | asyncio.Future[Response | None]  # a response, none, or one being completed


class Close(Exception):
    """End this connection (the reason was already logged)."""


def _not_offered(exc: ProtocolError) -> bool:
    """A well-formed header naming an API this broker does not serve at all."""
    return (
        isinstance(exc, InvalidRequestError)
        and exc.api_key is not None
        and exc.api_version is not None
        and exc.correlation_id is not None
        and exc.api_key not in SUPPORTED_APIS
    )


async def respond(ctx: ServerContext, peer: ConnectionInfo, frame: bytes) -> Answer:
    """The answer to one request frame from ``peer``."""
    try:
        request = parse(frame)
    except UnsupportedVersionError as exc:
        if exc.api_key == _API_VERSIONS and exc.correlation_id is not None:
            body = api_versions_response(0, error_code=ErrorCode.unsupported_version)
            return encode_response(_API_VERSIONS, 0, exc.correlation_id, body)
        log.info("%s:%d: %s; closing the connection", peer.host, peer.port, exc)
        raise Close from None
    except ProtocolError as exc:
        if _not_offered(exc) and _admitted(ctx, peer, exc.api_key or 0):  # answered: clients fail at once
            assert exc.api_key is not None and exc.api_version is not None and exc.correlation_id is not None
            refused = refusal(exc.api_key, exc.api_version, exc.correlation_id, f"{peer.host}:{peer.port}")
            if refused is not None:
                return refused
            raise Close from None
        log.info("%s:%d: %s; closing the connection", peer.host, peer.port, exc)
        log.debug("the frame began with %s", frame[:256].hex())
        raise Close from None
    handler = HANDLERS.get(request.api_key)
    if handler is None:
        refused = refusal(request.api_key, request.api_version, request.correlation_id, f"{peer.host}:{peer.port}")
        if refused is not None and _admitted(ctx, peer, request.api_key):
            return refused
        raise Close
    if not _admitted(ctx, peer, request.api_key):
        raise Close
    info = dataclasses.replace(peer, client_id=request.client_id or "")
    return await _encoded(peer, request, handler(ctx, request, info))


async def _encoded(peer: ConnectionInfo, request: ParsedRequest, body: Awaitable[Any]) -> Answer:
    """The handler's answer to ``request``, encoded; a Deferred body as a future of it."""
    try:
        answer = await body
        if isinstance(answer, Deferred):
            return asyncio.ensure_future(_completed(peer, request, answer.body))
        if answer is None:
            return None
        if isinstance(answer, Encoded):
            return answer.frame
        return encode_response_parts(request.api_key, request.api_version, request.correlation_id, answer)
    except CloseConnection as exc:
        log.info("%s:%d: %s; closing the connection", peer.host, peer.port, exc)
        raise Close from None
    except Exception:
        log.exception("%s:%d: %s v%d failed", peer.host, peer.port,
                      API_NAMES[request.api_key], request.api_version)  # fmt: skip
        raise Close from None


async def _completed(peer: ConnectionInfo, request: ParsedRequest, body: Awaitable[Any]) -> Response | None:
    answer = await _encoded(peer, request, body)
    assert not isinstance(answer, asyncio.Future), "a Deferred body is the complete answer"
    return answer


def _admitted(ctx: ServerContext, peer: ConnectionInfo, api_key: int) -> bool:
    """With SASL on, only the handshake is served before authentication (Kafka closes too)."""
    session = peer.session
    if not ctx.security.sasl_enabled or session.authenticated:
        return True
    if session.failed:
        log.info("%s:%d: request after failed SASL authentication; closing the connection", peer.host, peer.port)
        return False
    if api_key in _BEFORE_AUTHENTICATION:
        return True
    log.warning("%s:%d: %s before SASL authentication; closing the connection",
                peer.host, peer.port, API_NAMES.get(api_key, api_key))  # fmt: skip
    return False
