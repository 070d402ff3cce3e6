"""Kafka's authorization error codes, and the checks several handlers share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.security import Operation, ResourceType
from streamlab.server.security.acls import CLUSTER_NAME

TOPIC_AUTHORIZATION_FAILED: Final = 29
GROUP_AUTHORIZATION_FAILED: Final = 30
CLUSTER_AUTHORIZATION_FAILED: Final = 31

__all__ = [
    "CLUSTER_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED",
    "TOPIC_AUTHORIZATION_FAILED",
    "Operation",
    "ResourceType",
    "config_refusal",
    "denied_topics",
    "group_allowed",
    "topic_allowed",
]


def group_allowed(
    ctx: ServerContext, conn: ConnectionInfo, group_id: str, operation: Operation = Operation.READ
) -> bool:
    """Joining, syncing, heartbeating, leaving and committing need READ on the group."""
    return ctx.authorize(conn, operation, ResourceType.GROUP, group_id)


def topic_allowed(ctx: ServerContext, conn: ConnectionInfo, topic: str, operation: Operation) -> bool:
    return ctx.authorize(conn, operation, ResourceType.TOPIC, topic)


def denied_topics(
    ctx: ServerContext, conn: ConnectionInfo, topics: Iterable[Any], operation: Operation
) -> frozenset[str]:
    """The names of the requested ``topics`` the principal may not do ``operation`` on."""
    return frozenset(topic.name for topic in topics if not topic_allowed(ctx, conn, topic.name, operation))


# ConfigResource types of DescribeConfigs/IncrementalAlterConfigs -> the ACL resource
# that guards them and the error a refusal gets.
_CONFIG_RESOURCES: Final[dict[int, tuple[ResourceType, int]]] = {
    2: (ResourceType.TOPIC, TOPIC_AUTHORIZATION_FAILED),
    4: (ResourceType.CLUSTER, CLUSTER_AUTHORIZATION_FAILED),  # BROKER
    32: (ResourceType.GROUP, GROUP_AUTHORIZATION_FAILED),
}


def config_refusal(
    ctx: ServerContext, conn: ConnectionInfo, config_type: int, name: str, operation: Operation
) -> tuple[int, str] | None:
    """(error code, message) if ``operation`` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a
    config resource is refused; None if allowed or not a resource with ACLs."""
    found = _CONFIG_RESOURCES.get(config_type)
    if found is None:
        return None
    resource, code = found
    acl_name = CLUSTER_NAME if resource == ResourceType.CLUSTER else name
    if ctx.authorize(conn, operation, resource, acl_name):
        return None
    return code, f"{conn.session.principal} may not {operation.name} {resource.name} {acl_name!r}"


# The operations Kafka reports for each resource type (AclEntry.supportedOperations).
_SUPPORTED: Final[dict[ResourceType, tuple[Operation, ...]]] = {
    ResourceType.TOPIC: (Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DELETE, Operation.ALTER,
                         Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS),
    ResourceType.GROUP: (Operation.READ, Operation.DESCRIBE, Operation.DELETE, Operation.DESCRIBE_CONFIGS,
                         Operation.ALTER_CONFIGS),
    ResourceType.CLUSTER: (Operation.CREATE, Operation.CLUSTER_ACTION, Operation.DESCRIBE_CONFIGS,
                           Operation.ALTER_CONFIGS, Operation.IDEMPOTENT_WRITE, Operation.ALTER, Operation.DESCRIBE),
}  # fmt: skip
OMITTED: Final = -(2**31)  # "not requested", Kafka's encoding


def authorized_operations(ctx: ServerContext, conn: ConnectionInfo, resource: ResourceType, name: str) -> int:
    """Kafka's bit field of what the principal may do on the resource (bit n: operation
    code n), as Metadata, DescribeCluster and DescribeGroups report it when asked: every
    supported operation when authorization is off."""
    acl_name = CLUSTER_NAME if resource == ResourceType.CLUSTER else name
    bits = 0
    for operation in _SUPPORTED[resource]:
        if ctx.authorize(conn, operation, resource, acl_name):
            bits |= 1 << operation.value
    return bits
