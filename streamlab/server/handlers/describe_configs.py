"""DescribeConfigs: topic configs as stored by the broker, and a few broker settings.

Topic configs say whether they were set for the topic or are the default. The broker
resource (this node's id, or "" for cluster defaults) lists the fixed settings a client
might want to know; they are read-only. No config is sensitive and none has synonyms.
"""

from __future__ import annotations

from typing import Any

from streamlab.config import TOPIC_CONFIGS
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers import _configs
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 32

TOPIC, BROKER = 2, 4
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUEST = 42
SOURCE_STATIC_BROKER = 4
MAX_REQUEST_BYTES = 100 * 1024 * 1024

BROKER_CONFIGS: dict[str, tuple[str, int]] = {
    "auto.create.topics.enable": ("false", _configs.TYPE_BOOLEAN),
    "default.replication.factor": ("1", _configs.TYPE_INT),
    "message.max.bytes": (str(TOPIC_CONFIGS["max.message.bytes"][0]), _configs.TYPE_INT),
    "num.partitions": ("1", _configs.TYPE_INT),
    "socket.request.max.bytes": (str(MAX_REQUEST_BYTES), _configs.TYPE_INT),
}


def _entries(ctx: ServerContext, resource: Any) -> tuple[int, str | None, list[tuple[str, str, int, int, bool]]]:
    """(error code, message, [(name, value, source, type, read_only)]) for one resource."""
    keys = resource.configuration_keys or None
    if resource.resource_type == TOPIC:
        state = ctx.broker.topics.get(resource.resource_name)
        if state is None:
            return UNKNOWN_TOPIC_OR_PARTITION, f"unknown topic {resource.resource_name!r}", []
        found = _configs.entries(dict(state.config), keys)
        return 0, None, [(e.name, e.value, e.source, e.config_type, False) for e in found]
    if resource.resource_type == BROKER:
        if resource.resource_name not in ("", str(ctx.node_id)):
            return INVALID_REQUEST, f"this is broker {ctx.node_id}, not {resource.resource_name!r}", []
        names = sorted(BROKER_CONFIGS) if keys is None else [k for k in keys if k in BROKER_CONFIGS]
        return 0, None, [(n, *BROKER_CONFIGS[n][:1], SOURCE_STATIC_BROKER, BROKER_CONFIGS[n][1], True) for n in names]
    return INVALID_REQUEST, f"resource type {resource.resource_type} is not described by streamlab", []


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    t = types_for(API_KEY, request.api_version)
    results = []
    body: Any = request.body
    for resource in body.resources:
        code, message, entries = _entries(ctx, resource)
        configs = tuple(
            build(
                t.DescribeConfigsResourceResult,
                name=name,
                value=value,
                read_only=read_only,
                config_source=source,
                is_sensitive=False,
                synonyms=(),
                config_type=config_type,
                documentation=None,
            )
            for name, value, source, config_type, read_only in entries
        )
        results.append(
            build(
                t.DescribeConfigsResult,
                error_code=error_code(code),
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    return build(t.DescribeConfigsResponse, throttle_time=ZERO, results=tuple(results))
