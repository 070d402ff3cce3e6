"""OffsetCommit: store a group's positions, if the committer may.

A member commits with its member id and generation: a commit from an old generation
(ILLEGAL_GENERATION), an unknown member (UNKNOWN_MEMBER_ID), a fenced static member
(FENCED_INSTANCE_ID), or one while the assignment is being handed out
(REBALANCE_IN_PROGRESS) is refused, partition by partition, as Kafka does. Without a
member id and generation (-1), only a group with no members takes commits: that is how
standalone consumers and admin tools store offsets. In a consumer-protocol (KIP-848) group
the generation field carries the member epoch, which must be the member's current one
(STALE_MEMBER_EPOCH). The check and the write happen under
the group's lock, so the generation cannot move between them. Leader epochs (v6+) are
stored with the offsets and returned by OffsetFetch; retention times (v2-v4) are accepted
and not used.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.consumer_groups import consumer_groups
from streamlab.broker.offsets import commit
from streamlab.errors import StreamlabError
from streamlab.model.types import OffsetAndMetadata, TopicPartition
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import (
    GROUP_AUTHORIZATION_FAILED,
    TOPIC_AUTHORIZATION_FAILED,
    Operation,
    denied_topics,
    group_allowed,
)
from streamlab.server.handlers._groups import (
    ILLEGAL_GENERATION,
    INVALID_GROUP_ID,
    MAX_METADATA_CHARS,
    NONE,
    OFFSET_METADATA_TOO_LARGE,
    UNKNOWN_TOPIC_OR_PARTITION,
    existing_group,
)
from streamlab.server.handlers._topic_responses import (
    PartitionKey,
    every_partition,
    failing_the_rest,
    partition_errors,
)
from streamlab.server.responses import ZERO, build, types_for

API_KEY = 8


def _commit(ctx: ServerContext, body: Any, denied: frozenset[str] = frozenset()) -> dict[PartitionKey, int]:
    """The error code of every requested partition."""
    wanted = [(topic.name, p) for topic in body.topics for p in topic.partitions]
    codes: dict[PartitionKey, int] = {}
    if not body.group_id:
        return every_partition(body.topics, INVALID_GROUP_ID)
    generation = body.generation_id_or_member_epoch
    group = existing_group(ctx, body.group_id)
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for name, p in wanted:
        key = (name, p.partition_index)
        metadata = p.committed_metadata or ""
        if name in denied:  # no READ on the topic
            codes[key] = TOPIC_AUTHORIZATION_FAILED
            continue
        if len(metadata) > MAX_METADATA_CHARS:
            codes[key] = OFFSET_METADATA_TOO_LARGE
            continue
        try:
            ctx.broker.log(name, p.partition_index)
        except StreamlabError:
            codes[key] = UNKNOWN_TOPIC_OR_PARTITION
            continue
        epoch = getattr(p, "committed_leader_epoch", -1)  # v6+; -1: not known
        offsets[TopicPartition(name, p.partition_index)] = OffsetAndMetadata(
            p.committed_offset, metadata, epoch if epoch >= 0 else None
        )
        codes[key] = NONE
    consumer_group = consumer_groups(ctx.broker).get(body.group_id)
    if consumer_group is not None:  # KIP-848: the member id and its current member epoch
        with consumer_group.lock:
            try:
                consumer_group.check_member_epoch(body.member_id, generation)
            except StreamlabError as exc:
                return failing_the_rest(codes, exc.kafka_code)
            if offsets:
                commit(ctx.broker, body.group_id, offsets)
        return codes
    if group is None:
        if generation >= 0:  # a generation of a group we do not know: from before a restart
            return failing_the_rest(codes, ILLEGAL_GENERATION)
        if offsets:
            commit(ctx.broker, body.group_id, offsets)
        return codes
    with group.cv:
        try:
            group.check_commit(body.member_id, generation, getattr(body, "group_instance_id", None))
        except StreamlabError as exc:
            return failing_the_rest(codes, exc.kafka_code)
        if offsets:
            commit(ctx.broker, body.group_id, offsets)
    return codes


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    if body.group_id and not group_allowed(ctx, conn, body.group_id):
        codes = every_partition(body.topics, GROUP_AUTHORIZATION_FAILED)
    else:
        denied = denied_topics(ctx, conn, body.topics, Operation.READ)
        codes = await asyncio.to_thread(_commit, ctx, body, denied)
    topics = partition_errors(t.OffsetCommitResponseTopic, t.OffsetCommitResponsePartition, body.topics,
                              codes.__getitem__)  # fmt: skip
    return build(t.OffsetCommitResponse, throttle_time=ZERO, topics=topics)
