"""Metadata: the one broker, and the topics and partitions it leads.

Every partition is led by this broker, with itself as the only replica, leader epoch 0.
Each topic carries its ID (:mod:`streamlab.server.topic_ids`), which share-group clients
use to name topics; v10+ may ask for a topic by ID alone. An unknown topic asked for by
name is created as Kafka does when the broker has ``auto.create.topics.enable`` (the
default) and the request allows it (``allow_auto_topic_creation``, v4+; always before v4),
with ``num.partitions`` partitions, if the principal may CREATE it; it is answered with its
partitions at once (Kafka says LEADER_NOT_AVAILABLE until its controller has placed them).
An invalid name is INVALID_TOPIC_EXCEPTION; with auto-creation off an unknown topic is
UNKNOWN_TOPIC_OR_PARTITION. Which topics a request means depends on the version: in v0
an empty list means all topics; from v1 on, null means all topics and an empty list means
none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from streamlab.broker.topics import use_topic
from streamlab.errors import InvalidTopicError, StreamlabError
from streamlab.model.names import validate_topic_name
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import authorized_operations
from streamlab.server.responses import ZERO, build, error_code, types_for
from streamlab.server.security import Operation, ResourceType
from streamlab.server.security.acls import CLUSTER_NAME
from streamlab.server.topic_ids import ZERO_ID

log = logging.getLogger("streamlab.server")

API_KEY = 3

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC = 17
TOPIC_AUTHORIZATION_FAILED = 29
UNKNOWN_TOPIC_ID = 100
LEADER_EPOCH = 0
# "Operations not requested" in Kafka's encoding of authorized operations.
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    wanted: list[tuple[str | None, Any]]
    if body.topics is None or (request.api_version == 0 and not body.topics):
        # "All topics" means all the principal may DESCRIBE, as in Kafka.
        names = [n for n in sorted(ctx.broker.topics) if ctx.authorize(conn, Operation.DESCRIBE, ResourceType.TOPIC, n)]
        wanted = [(name, None) for name in names]
    else:
        wanted = [(topic.name, getattr(topic, "topic_id", None)) for topic in body.topics]
        if getattr(body, "allow_auto_topic_creation", True) and ctx.broker.settings.auto_create_topics_enable:
            await _auto_create(ctx, conn, [name for name, _ in wanted if name is not None])
    topics = [_topic(ctx, conn, t, name, topic_id) for name, topic_id in wanted]
    if getattr(body, "include_topic_authorized_operations", False):  # v8+
        topics = [
            dataclasses.replace(topic, topic_authorized_operations=authorized_operations(
                ctx, conn, ResourceType.TOPIC, topic.name)) if topic.error_code.value == 0 else topic
            for topic in topics
        ]  # fmt: skip
    cluster_operations = AUTHORIZED_OPERATIONS_OMITTED
    if getattr(body, "include_cluster_authorized_operations", False):  # v8-10
        cluster_operations = authorized_operations(ctx, conn, ResourceType.CLUSTER, "")
    broker = build(t.MetadataResponseBroker, node_id=ctx.node_id, host=ctx.advertised_host, port=ctx.advertised_port)
    return build(
        t.MetadataResponse,
        throttle_time=ZERO,
        brokers=(broker,),
        cluster_id=ctx.cluster_id,
        controller_id=ctx.node_id,
        topics=tuple(topics),
        cluster_authorized_operations=cluster_operations,
    )


async def _auto_create(ctx: ServerContext, conn: ConnectionInfo, names: list[str]) -> None:
    """Create the unknown, valid ``names`` the principal may create (Kafka: CREATE on the
    cluster or the topic); the rest are answered by :func:`_topic` as they stand."""
    for name in names:
        if name in ctx.broker.topics or not _valid(name):
            continue
        if not (
            ctx.authorize(conn, Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)
            or ctx.authorize(conn, Operation.CREATE, ResourceType.TOPIC, name)
        ):
            continue
        try:
            await asyncio.to_thread(use_topic, ctx.broker, name)  # catalog and disk: off the loop
        except StreamlabError as exc:  # e.g. the disk is full: the topic stays unknown
            log.warning("auto-creating topic %r failed: %s", name, exc)


def _valid(name: str) -> bool:
    try:
        validate_topic_name(name)
    except InvalidTopicError:
        return False
    return True


def _topic(ctx: ServerContext, conn: ConnectionInfo, t: Any, name: str | None, topic_id: Any) -> Any:
    def answer(code: int, partitions: tuple[Any, ...] = ()) -> Any:
        return build(
            t.MetadataResponseTopic,
            error_code=error_code(code),
            # Only v12 lets the name be null (a topic asked for by id); v10-11 want a string.
            name=name if name is not None or t.MetadataResponse.__version__ >= 12 else "",
            topic_id=topic_id if topic_id is not None else ZERO_ID,
            is_internal=False,
            partitions=partitions,
            topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
        )

    if name is None:  # v10+ may name a topic by id only
        name = ctx.topic_ids.name_for(topic_id)
        if name is None:
            return answer(UNKNOWN_TOPIC_ID)
    # Before the existence check, so a denied principal cannot probe which topics exist.
    if not ctx.authorize(conn, Operation.DESCRIBE, ResourceType.TOPIC, name):
        return answer(TOPIC_AUTHORIZATION_FAILED)
    try:
        validate_topic_name(name)
    except InvalidTopicError:
        return answer(INVALID_TOPIC)
    state = ctx.broker.topics.get(name)
    if state is None:
        return answer(UNKNOWN_TOPIC_OR_PARTITION)
    topic_id = ctx.topic_ids.id_for(name)
    replicas = (ctx.node_id,)
    partitions = tuple(
        build(
            t.MetadataResponsePartition,
            error_code=error_code(0),
            partition_index=p,
            leader_id=ctx.node_id,
            leader_epoch=LEADER_EPOCH,
            replica_nodes=replicas,
            isr_nodes=replicas,
            offline_replicas=(),
        )
        for p in range(state.partitions)
    )
    return answer(0, partitions)
