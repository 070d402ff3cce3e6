"""CreateTopics: topics with a partition count and configs, on this one broker.

A partition count of -1 means the broker default (1). The replication factor may be -1 or
1; anything higher cannot be met by one broker (INVALID_REPLICATION_FACTOR). Manual
replica assignments are accepted when every replica is this broker. ``validate_only``
checks everything and creates nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker import topics
from streamlab.config import topic_config
from streamlab.errors import InvalidPartitionsError, StreamlabError, TopicExistsError
from streamlab.model.names import validate_topic_name
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers import _configs
from streamlab.server.handlers._admin_outcomes import (
    INVALID_REPLICA_ASSIGNMENT,
    INVALID_REQUEST,
    NAMED_TWICE,
    Refused,
    check_replicas,
    named_twice,
)
from streamlab.server.responses import ZERO, build, error_code, error_of, types_for
from streamlab.server.security import Operation, ResourceType
from streamlab.server.security.acls import CLUSTER_NAME

API_KEY = 19

DEFAULT_PARTITIONS = 1
TOPIC_AUTHORIZATION_FAILED = 29
INVALID_REPLICATION_FACTOR = 38


def _partitions(ctx: ServerContext, topic: Any) -> int:
    if topic.replication_factor not in (-1, 1):
        raise Refused(
            INVALID_REPLICATION_FACTOR,
            f"replication factor {topic.replication_factor} is more than the 1 broker streamlab runs",
        )
    if topic.assignments:
        if topic.num_partitions != -1 or topic.replication_factor != -1:
            raise Refused(INVALID_REQUEST, "give either replica assignments or partitions and replication factor")
        indexes = sorted(a.partition_index for a in topic.assignments)
        if indexes != list(range(len(indexes))):
            raise Refused(INVALID_REPLICA_ASSIGNMENT, "replica assignments must number partitions 0..n-1")
        check_replicas(ctx.node_id, topic.assignments)
        return len(indexes)
    return DEFAULT_PARTITIONS if topic.num_partitions == -1 else int(topic.num_partitions)


def _create(ctx: ServerContext, topic: Any, validate_only: bool) -> tuple[int, str | None, int, dict[str, Any]]:
    """(error code, message, partitions, full config) for one topic of the request."""
    try:
        partitions = _partitions(ctx, topic)
        config = _configs.overrides((c.name, c.value) for c in topic.configs)
        if validate_only:
            validate_topic_name(topic.name)
            full = topic_config(config)
            if topic.name in ctx.broker.topics:
                raise TopicExistsError(f"topic {topic.name!r} already exists", topic=topic.name)
            if not 1 <= partitions <= topics.MAX_PARTITIONS:
                raise InvalidPartitionsError(f"partitions must be from 1 to {topics.MAX_PARTITIONS}")
        else:
            topics.create_topic(ctx.broker, topic.name, partitions, config)
            full = ctx.broker.topic(topic.name).config
    except Refused as exc:
        return exc.code, str(exc), -1, {}
    except StreamlabError as exc:
        return error_of(exc).value, str(exc), -1, {}
    return 0, None, partitions, full


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    twice = named_twice(body.topics)
    results = []
    for topic in body.topics:
        code: int
        message: str | None
        config: dict[str, Any]
        if topic.name in twice:
            (code, message), partitions, config = NAMED_TWICE, -1, {}
        elif not (
            ctx.authorize(conn, Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)
            or ctx.authorize(conn, Operation.CREATE, ResourceType.TOPIC, topic.name)
        ):
            code, message, partitions, config = TOPIC_AUTHORIZATION_FAILED, "no CREATE on the cluster or topic", -1, {}
        else:
            # Creating touches the catalog and the disk: off the event loop.
            code, message, partitions, config = await asyncio.to_thread(_create, ctx, topic, body.validate_only)
        shown = _configs.entries(config) if hasattr(t, "CreatableTopicConfigs") else []  # v5+ shows configs
        configs = tuple(
            build(t.CreatableTopicConfigs, name=e.name, value=e.value, read_only=False, config_source=e.source,
                  is_sensitive=False)
            for e in shown
        )  # fmt: skip
        results.append(
            build(
                t.CreatableTopicResult,
                name=topic.name,
                topic_id=None,
                error_code=error_code(code),
                error_message=message,
                num_partitions=partitions,
                replication_factor=1 if code == 0 else -1,
                configs=configs if code == 0 else None,
            )
        )
    return build(t.CreateTopicsResponse, throttle_time=ZERO, topics=tuple(results))
