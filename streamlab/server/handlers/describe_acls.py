"""DescribeAcls: the bindings a filter matches, grouped by resource (DESCRIBE on the cluster)."""

from __future__ import annotations

from typing import Any

from kio.static.primitive import i8

from streamlab.errors import InvalidAclError
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._acls import binding_fields, filter_of, refusal
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for
from streamlab.server.security import Operation
from streamlab.server.security.acls import AclBinding

API_KEY = 29


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    t = types_for(API_KEY, request.api_version)

    def answer(code: int, message: str | None, resources: tuple[Any, ...] = ()) -> Any:
        return build(t.DescribeAclsResponse, throttle_time=ZERO, error_code=error_code(code),
                     error_message=message, resources=resources)  # fmt: skip

    refused = refusal(ctx, conn, Operation.DESCRIBE)
    if refused is not None or ctx.authorizer is None:
        return answer(*(refused or (0, None)))
    try:
        found = ctx.authorizer.describe(filter_of(request.body))
    except InvalidAclError as exc:
        return answer(error_of(exc).value, str(exc))
    grouped: dict[tuple[int, str, int], list[AclBinding]] = {}
    for acl in found:
        grouped.setdefault((acl.resource_type, acl.resource_name, acl.pattern_type), []).append(acl)
    resources = []
    for (resource_type, name, pattern_type), acls in grouped.items():
        descriptions = []
        for acl in acls:
            fields = binding_fields(acl)
            descriptions.append(build(t.AclDescription, **fields))
        resources.append(
            build(
                t.DescribeAclsResource,
                resource_type=i8(resource_type),
                resource_name=name,
                pattern_type=i8(pattern_type),
                acls=tuple(descriptions),
            )
        )
    return answer(0, None, tuple(resources))
