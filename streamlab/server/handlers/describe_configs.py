"""DescribeConfigs: topic configs as stored by the broker, broker settings, group configs.

Topic configs say whether they were set for the topic or are the default. The broker
resource (this node's id, or "" for cluster defaults) lists, by Kafka's names, the
settings streamlab has: the topic defaults (``log.retention.ms``, ...), auto-creation
(``auto.create.topics.enable``, ``num.partitions``) and the limits this server was started
with; they are read-only. A GROUP resource lists every group config (a share group's
settings, ``consumer.session.timeout.ms``, ...), whether or not the group exists, as
Kafka does. No config is sensitive and none has synonyms.
"""

from __future__ import annotations

from typing import Any

from streamlab.config import TOPIC_CONFIGS, topic_config
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers import _configs
from streamlab.server.handlers._authz import Operation, config_refusal
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 32

TOPIC, BROKER, GROUP = 2, 4, 32
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUEST = 42
SOURCE_STATIC_BROKER = 4

# Kafka's broker setting for each topic config's default.
_TOPIC_DEFAULT_NAMES = {
    "retention.ms": "log.retention.ms",
    "retention.bytes": "log.retention.bytes",
    "cleanup.policy": "log.cleanup.policy",
    "max.message.bytes": "message.max.bytes",
    "segment.bytes": "log.segment.bytes",
    "segment.ms": "log.roll.ms",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "message.timestamp.type": "log.message.timestamp.type",
    "compression.type": "compression.type",
    "min.insync.replicas": "min.insync.replicas",
}
BROKER_CONFIGS: dict[str, tuple[str, int]] = {
    broker_name: (str(TOPIC_CONFIGS[topic_name][0]), _configs.config_type(topic_name))
    for topic_name, broker_name in _TOPIC_DEFAULT_NAMES.items()
}
SOURCE_GROUP_CONFIG = 8


def _broker_configs(ctx: ServerContext) -> dict[str, tuple[str, int]]:
    """The topic defaults, auto-creation, and the limits this server was started with (limits.py)."""
    settings = ctx.broker.settings
    ints = {
        "broker.id": ctx.node_id,
        "node.id": ctx.node_id,
        "num.partitions": settings.num_partitions,
        "default.replication.factor": settings.default_replication_factor,
        "offsets.topic.replication.factor": 1,
        "transaction.state.log.replication.factor": 1,
        "group.initial.rebalance.delay.ms": ctx.broker.groups.initial_rebalance_delay_ms,
        "fetch.max.bytes": ctx.limits.fetch_max_bytes,
        "max.connections.per.ip": ctx.limits.max_connections_per_ip,
        "queued.max.request.bytes": ctx.limits.queued_max_request_bytes,
        "socket.request.max.bytes": ctx.limits.socket_request_max_bytes,
    }
    auto = {"auto.create.topics.enable": (str(settings.auto_create_topics_enable).lower(), _configs.TYPE_BOOLEAN)}
    return BROKER_CONFIGS | auto | {name: (str(value), _configs.TYPE_INT) for name, value in ints.items()}


def _group_entries(ctx: ServerContext, group_id: str) -> dict[str, tuple[str, int, int]]:
    """name -> (value, source, type) of every group config of ``group_id``."""
    from streamlab.broker import group_configs
    from streamlab.broker.share_registry import share_groups
    from streamlab.model.share import ShareGroupConfig
    from streamlab.server.handlers.incremental_alter_configs import GROUP_CONFIGS as SHARE_CONFIGS

    group = share_groups(ctx.broker).get(group_id)
    share, defaults = (group.config if group is not None else ShareGroupConfig()), ShareGroupConfig()
    out: dict[str, tuple[str, int, int]] = {}
    for name, (field, _) in SHARE_CONFIGS.items():
        value = getattr(share, field)
        source = _configs.SOURCE_DEFAULT if value == getattr(defaults, field) else SOURCE_GROUP_CONFIG
        kind = _configs.TYPE_INT if isinstance(value, int) else _configs.TYPE_STRING
        out[name] = ("" if value is None else str(value), source, kind)
    for name, (value, is_default) in group_configs.group_config(ctx.broker, group_id).items():
        kind = _configs.TYPE_INT if isinstance(value, int) else _configs.TYPE_STRING
        out[name] = (str(value), _configs.SOURCE_DEFAULT if is_default else SOURCE_GROUP_CONFIG, kind)
    return out


def _entries(ctx: ServerContext, resource: Any) -> tuple[int, str | None, list[tuple[str, str, int, int, bool]]]:
    """(error code, message, [(name, value, source, type, read_only)]) for one resource."""
    keys = resource.configuration_keys or None
    if resource.resource_type == TOPIC:
        state = ctx.broker.topics.get(resource.resource_name)
        if state is None:
            return UNKNOWN_TOPIC_OR_PARTITION, f"unknown topic {resource.resource_name!r}", []
        found = _configs.entries(topic_config() | dict(state.config), keys)  # configs added since: defaults
        return 0, None, [(e.name, e.value, e.source, e.config_type, False) for e in found]
    if resource.resource_type == BROKER:
        if resource.resource_name not in ("", str(ctx.node_id)):
            return INVALID_REQUEST, f"this is broker {ctx.node_id}, not {resource.resource_name!r}", []
        configs = _broker_configs(ctx)
        names = sorted(configs) if keys is None else [k for k in keys if k in configs]
        return 0, None, [(n, configs[n][0], SOURCE_STATIC_BROKER, configs[n][1], True) for n in names]
    if resource.resource_type == GROUP:
        described = _group_entries(ctx, resource.resource_name)
        names = sorted(described) if keys is None else [k for k in keys if k in described]
        return 0, None, [(n, described[n][0], described[n][1], described[n][2], False) for n in names]
    return INVALID_REQUEST, f"resource type {resource.resource_type} is not described by streamlab", []


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    t = types_for(API_KEY, request.api_version)
    results = []
    body: Any = request.body
    for resource in body.resources:
        refused = config_refusal(ctx, conn, resource.resource_type, resource.resource_name, Operation.DESCRIBE_CONFIGS)
        code, message, entries = (*refused, []) if refused else _entries(ctx, resource)
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
