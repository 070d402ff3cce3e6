"""DeleteAcls: remove the bindings each filter matches (ALTER on the cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.errors import InvalidAclError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._acls import binding_fields, filter_of, refusal
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for
from streamlab.server.security import Operation
from streamlab.server.security.acls import AclFilter

API_KEY = 31


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)

    def result(code: int, message: str | None, matching: tuple[Any, ...] = ()) -> Any:
        return build(t.DeleteAclsFilterResult, error_code=error_code(code), error_message=message,
                     matching_acls=matching)  # fmt: skip

    refused = refusal(ctx, conn, Operation.ALTER)
    if refused is not None or ctx.authorizer is None:
        results = [result(*(refused or (0, None)))] * len(body.filters)
        return build(t.DeleteAclsResponse, throttle_time=ZERO, filter_results=tuple(results))
    filters: list[AclFilter | InvalidAclError] = []
    for item in body.filters:
        try:
            filters.append(filter_of(item))
        except InvalidAclError as exc:
            filters.append(exc)
    valid = [f for f in filters if isinstance(f, AclFilter)]
    removed = iter(await asyncio.to_thread(ctx.authorizer.delete, valid))  # fsyncs the ACL file
    results = []
    for f in filters:
        if isinstance(f, InvalidAclError):
            results.append(result(error_of(f).value, str(f)))
            continue
        matching = tuple(
            build(t.DeleteAclsMatchingAcl, error_code=error_code(0), error_message=None, **binding_fields(acl))
            for acl in next(removed)
        )
        results.append(result(0, None, matching))
    return build(t.DeleteAclsResponse, throttle_time=ZERO, filter_results=tuple(results))
