"""CreateAcls: add ACL bindings (ALTER on the cluster; Kafka's ``kafka-acls.sh --add``)."""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import InvalidAclError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._acls import refusal
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for
from streamlab.server.security import Operation
from streamlab.server.security.acls import AclBinding

API_KEY = 30


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    refused = refusal(ctx, conn, Operation.ALTER)
    results: list[tuple[int, str | None]] = []
    if refused is not None or ctx.authorizer is None:
        results = [refused or (0, None)] * len(body.creations)
    else:
        valid: list[AclBinding] = []
        for c in body.creations:
            try:
                binding = AclBinding.of(c.resource_type, c.resource_name, c.resource_pattern_type, c.principal,
                                        c.host, c.operation, c.permission_type)  # fmt: skip
            except InvalidAclError as exc:
                results.append((error_of(exc).value, str(exc)))
                continue
            valid.append(binding)
            results.append((0, None))
        if valid:
            await asyncio.to_thread(ctx.authorizer.create, valid)  # fsyncs the ACL file
    return build(
        t.CreateAclsResponse,
        throttle_time=ZERO,
        results=tuple(
            build(t.AclCreationResult, error_code=error_code(code), error_message=message) for code, message in results
        ),
    )
