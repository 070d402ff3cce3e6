"""What the three ACL APIs share: the authorization of the caller, and wire conversions."""

from __future__ import annotations

from typing import Any, Final

from kio.static.primitive import i8

from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.security import Operation, ResourceType
from streamlab.server.security.acls import CLUSTER_NAME, AclBinding, AclFilter

SECURITY_DISABLED: Final = 54
CLUSTER_AUTHORIZATION_FAILED: Final = 31


def refusal(ctx: ServerContext, conn: ConnectionInfo, operation: Operation) -> tuple[int, str] | None:
    """Why the caller may not use an ACL API (error code, message), or None if it may.

    Kafka answers SECURITY_DISABLED when no authorizer is configured, and requires ALTER
    on the cluster to change ACLs and DESCRIBE on it to list them.
    """
    if ctx.authorizer is None:
        return SECURITY_DISABLED, "no authorizer is configured: serve with users to use ACLs"
    if not ctx.authorize(conn, operation, ResourceType.CLUSTER, CLUSTER_NAME):
        return CLUSTER_AUTHORIZATION_FAILED, f"{conn.session.principal} may not {operation.name} the cluster's ACLs"
    return None


def binding_fields(acl: AclBinding) -> dict[str, Any]:
    """The fields of DescribeAcls' and DeleteAcls' binding entries, as kio wants them."""
    return {
        "resource_type": i8(acl.resource_type),
        "resource_name": acl.resource_name,
        "pattern_type": i8(acl.pattern_type),
        "principal": acl.principal,
        "host": acl.host,
        "operation": i8(acl.operation),
        "permission_type": i8(acl.permission),
    }


def filter_of(item: Any) -> AclFilter:
    """An AclFilter from a DescribeAcls request or a DeleteAcls filter (raises InvalidAclError)."""
    return AclFilter.of(
        item.resource_type_filter,
        item.resource_name_filter,
        item.pattern_type_filter,
        item.principal_filter,
        item.host_filter,
        item.operation,
        item.permission_type,
    )
