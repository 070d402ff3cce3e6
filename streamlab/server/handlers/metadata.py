"""Metadata: the one broker, and the topics and partitions it leads.

Every partition is led by this broker, with itself as the only replica, leader epoch 0.
Each topic carries its ID (:mod:`streamlab.server.topic_ids`), which share-group clients
use to name topics; v10+ may ask for a topic by ID alone. Topics are never created
implicitly (``allow_auto_topic_creation`` is ignored): a typo in a topic name is an
error, as in the embedded API. Which topics a request means depends on the version: in v0
an empty list means all topics; from v1 on, null means all topics and an empty list means
none.
"""

from __future__ import annotations

from typing import Any

from streamlab.errors import InvalidTopicError
from streamlab.model.names import validate_topic_name
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.responses import ZERO, build, error_code, types_for
from streamlab.server.topic_ids import ZERO_ID

API_KEY = 3

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC = 17
UNKNOWN_TOPIC_ID = 100
LEADER_EPOCH = 0
# "Operations not requested" in Kafka's encoding of authorized operations.
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    wanted: list[tuple[str | None, Any]]
    if body.topics is None or (request.api_version == 0 and not body.topics):
        wanted = [(name, None) for name in sorted(ctx.broker.topics)]
    else:
        wanted = [(topic.name, getattr(topic, "topic_id", None)) for topic in body.topics]
    topics = [_topic(ctx, t, name, topic_id) for name, topic_id in wanted]
    broker = build(t.MetadataResponseBroker, node_id=ctx.node_id, host=ctx.advertised_host, port=ctx.advertised_port)
    return build(
        t.MetadataResponse,
        throttle_time=ZERO,
        brokers=(broker,),
        cluster_id=ctx.cluster_id,
        controller_id=ctx.node_id,
        topics=tuple(topics),
        cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
    )


def _topic(ctx: ServerContext, t: Any, name: str | None, topic_id: Any) -> Any:
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
