"""ApiVersions: which APIs and versions this broker speaks.

A request at a version we do not serve never reaches this handler: the server answers it
with a v0 UNSUPPORTED_VERSION body listing the ranges, so the client can retry lower.
"""

from __future__ import annotations

from typing import Any

from streamlab.protocol.framing import ParsedRequest, api_versions_response
from streamlab.server.context import ConnectionInfo, ServerContext

API_KEY = 18


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    return api_versions_response(request.api_version)
