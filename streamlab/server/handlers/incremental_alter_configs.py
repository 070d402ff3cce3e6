"""IncrementalAlterConfigs: change topic configs and group configs.

TOPIC resources take SET and DELETE (back to the default) of streamlab's topic configs,
and APPEND and SUBTRACT of list configs (``cleanup.policy``); APPEND or SUBTRACT on any
other config is INVALID_CONFIG, as in Kafka. GROUP resources take Kafka's group configs:
a share group's ``share.record.lock.duration.ms``, ``share.delivery.count.limit``,
``share.auto.offset.reset`` and ``errors.deadletterqueue.topic.name`` (the dead-letter
topic; KIP-1191's name), applied to what the group does next, and the others of
:mod:`streamlab.broker.group_configs` (``consumer.session.timeout.ms``, ...). An unknown
config is INVALID_CONFIG, and ``validate_only`` checks without changing anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker import group_configs
from streamlab.broker.share_registry import share_groups
from streamlab.broker.topics import alter_config
from streamlab.config import LIST_CONFIGS, TOPIC_CONFIGS, canonical_key, topic_config
from streamlab.errors import ConfigError, StreamlabError
from streamlab.model.share import ShareGroupConfig
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import Operation, config_refusal
from streamlab.server.handlers._configs import overrides
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for

API_KEY = 44

RESOURCE_TOPIC, RESOURCE_GROUP = 2, 32
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
INVALID_REQUEST = 42

# Kafka group config name -> (ShareGroupConfig field, parser)
GROUP_CONFIGS: dict[str, tuple[str, Any]] = {
    "share.record.lock.duration.ms": ("record_lock_ms", int),
    "share.delivery.count.limit": ("delivery_count_limit", int),
    "share.auto.offset.reset": ("auto_offset_reset", str),
    "errors.deadletterqueue.topic.name": ("dead_letter_topic", lambda v: v or None),
}
_DEFAULTS = ShareGroupConfig()


def _group_changes(configs: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for entry in configs:
        if entry.name not in GROUP_CONFIGS:
            raise ConfigError(f"unknown group config {entry.name!r}; known: {sorted(GROUP_CONFIGS)}")
        field, parse = GROUP_CONFIGS[entry.name]
        if entry.config_operation == DELETE or entry.value is None:
            changes[field] = getattr(_DEFAULTS, field)
            continue
        try:
            changes[field] = parse(entry.value)
        except ValueError as exc:
            raise ConfigError(f"group config {entry.name}={entry.value!r}: {exc}") from exc
    return changes


def _alter(ctx: ServerContext, resource: Any, validate_only: bool) -> None:
    name = resource.resource_name
    if resource.resource_type == RESOURCE_GROUP:
        _alter_group(ctx, name, resource.configs, validate_only)
        return
    if resource.resource_type != RESOURCE_TOPIC:
        raise _Refused(INVALID_REQUEST, f"resource type {resource.resource_type} has no configs here")
    state = ctx.broker.topic(name)
    sets = overrides((e.name, e.value) for e in resource.configs if e.config_operation == SET)
    deletes = [canonical_key(e.name) for e in resource.configs if e.config_operation == DELETE]
    unknown = [k for k in deletes if k not in TOPIC_CONFIGS]
    if unknown:
        raise ConfigError(f"unknown topic configs {unknown}")
    defaults = topic_config()
    changes = {**sets, **{k: defaults[k] for k in deletes}}
    for entry in resource.configs:
        if entry.config_operation in (APPEND, SUBTRACT):
            key = canonical_key(entry.name)
            current = changes.get(key, state.config.get(key, defaults.get(key)))
            changes[key] = _list_change(key, str(current), entry.value or "", entry.config_operation)
    if validate_only:
        topic_config({**state.config, **changes})
        return
    alter_config(ctx.broker, name, changes)


def _list_change(key: str, current: str, value: str, operation: int) -> str:
    """APPEND or SUBTRACT ``value`` (comma-separated) to/from the list config ``key``."""
    if key not in LIST_CONFIGS:
        raise ConfigError(f"{key} is not a list config: APPEND and SUBTRACT work on {sorted(LIST_CONFIGS)}")
    items = [v for v in current.split(",") if v]
    given = [v.strip() for v in value.split(",") if v.strip()]
    if operation == APPEND:
        items += [v for v in given if v not in items]
    else:
        items = [v for v in items if v not in given]
    if not items:
        raise ConfigError(f"{key} cannot be empty")
    return ",".join(items)


def _alter_group(ctx: ServerContext, name: str, configs: Any, validate_only: bool) -> None:
    if any(entry.config_operation not in (SET, DELETE) for entry in configs):
        raise ConfigError("group configs are not lists: only SET and DELETE apply")
    share = [e for e in configs if e.name in GROUP_CONFIGS]
    other = [e for e in configs if e.name not in GROUP_CONFIGS]
    sets = {e.name: e.value or "" for e in other if e.config_operation == SET and e.value is not None}
    deletes = [e.name for e in other if e.name not in sets]
    group_configs.alter(ctx.broker, name, sets, deletes, validate_only=True)  # all checked before any change
    if share:
        changes = _group_changes(share)
        registry = share_groups(ctx.broker)
        if validate_only:
            group = registry.get(name)
            (group.config if group is not None else ShareGroupConfig()).updated(changes)
        else:
            registry.configure(name, changes)
    if other and not validate_only:
        group_configs.alter(ctx.broker, name, sets, deletes, validate_only=False)


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    answers = []
    for resource in body.resources:
        code, message = error_code(0), None
        refused = config_refusal(ctx, conn, resource.resource_type, resource.resource_name, Operation.ALTER_CONFIGS)
        try:
            if refused is not None:
                raise _Refused(*refused)
            await asyncio.to_thread(_alter, ctx, resource, bool(body.validate_only))
        except _Refused as exc:
            code, message = error_code(exc.code), str(exc)
        except StreamlabError as exc:
            code, message = error_of(exc), str(exc)
        answers.append(build(t.AlterConfigsResourceResponse, error_code=code, error_message=message,
                             resource_type=resource.resource_type, resource_name=resource.resource_name))  # fmt: skip
    return build(t.IncrementalAlterConfigsResponse, throttle_time=ZERO, responses=tuple(answers))
