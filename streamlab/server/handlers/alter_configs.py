"""AlterConfigs (the original, before IncrementalAlterConfigs): replace a topic's whole config.

As in Kafka, the configs given become the topic's config and every config not given goes
back to its default (kafkajs 2.x ``alterConfigs`` and kafka-python ``alter_configs`` use
this API). BROKER resources are read-only here (INVALID_REQUEST); GROUP resources are not
served by this API in Kafka either. ``validate_only`` checks without changing anything.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from streamlab.broker.topics import alter_config
from streamlab.config import topic_config
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._admin_outcomes import INVALID_REQUEST, Refused, outcome
from streamlab.server.handlers._authz import Operation, config_refusal
from streamlab.server.handlers._configs import overrides
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 33

RESOURCE_TOPIC, RESOURCE_BROKER = 2, 4


def _replace(ctx: ServerContext, resource: Any, validate_only: bool) -> None:
    if resource.resource_type == RESOURCE_BROKER:
        raise Refused(INVALID_REQUEST, "broker configs are set when `streamlab serve` starts; they cannot be altered")
    if resource.resource_type != RESOURCE_TOPIC:
        unserved = f"resource type {resource.resource_type} has no configs to alter with AlterConfigs"
        raise Refused(INVALID_REQUEST, unserved)
    ctx.broker.topic(resource.resource_name)
    full = topic_config(overrides((c.name, c.value) for c in resource.configs))
    if not validate_only:
        alter_config(ctx.broker, resource.resource_name, full)


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    answers = []
    for resource in body.resources:
        refused = config_refusal(ctx, conn, resource.resource_type, resource.resource_name, Operation.ALTER_CONFIGS)
        replace = functools.partial(_replace, ctx, resource, bool(body.validate_only))
        code, message = refused if refused is not None else await asyncio.to_thread(outcome, replace)
        answers.append(build(t.AlterConfigsResourceResponse, error_code=error_code(code), error_message=message,
                             resource_type=resource.resource_type, resource_name=resource.resource_name))  # fmt: skip
    return build(t.AlterConfigsResponse, throttle_time=ZERO, responses=tuple(answers))
