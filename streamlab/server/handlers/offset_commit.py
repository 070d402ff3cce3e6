"""OffsetCommit: store a group's positions, if the committer may.

A member commits with its member id and generation: a commit from an old generation
(ILLEGAL_GENERATION), an unknown member (UNKNOWN_MEMBER_ID), a fenced static member
(FENCED_INSTANCE_ID), or one while the assignment is being handed out
(REBALANCE_IN_PROGRESS) is refused, partition by partition, as Kafka does. Without a
member id and generation (-1), only a group with no members takes commits: that is how
standalone consumers and admin tools store offsets. The check and the write happen under
the group's lock, so the generation cannot move between them. Retention times (v2-v4) and
leader epochs are accepted and not used.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamlab.broker.offsets import commit
from streamlab.errors import StreamlabError
from streamlab.model.types import OffsetAndMetadata, TopicPartition
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._groups import (
    ILLEGAL_GENERATION,
    INVALID_GROUP_ID,
    MAX_METADATA_CHARS,
    NONE,
    OFFSET_METADATA_TOO_LARGE,
    UNKNOWN_TOPIC_OR_PARTITION,
    existing_group,
)
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 8


def _commit(ctx: ServerContext, body: Any) -> dict[tuple[str, int], int]:
    """The error code of every requested partition."""
    wanted = [(topic.name, p) for topic in body.topics for p in topic.partitions]
    codes: dict[tuple[str, int], int] = {}
    if not body.group_id:
        return {(name, p.partition_index): INVALID_GROUP_ID for name, p in wanted}
    generation = body.generation_id_or_member_epoch
    group = existing_group(ctx, body.group_id)
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for name, p in wanted:
        key = (name, p.partition_index)
        metadata = p.committed_metadata or ""
        if len(metadata) > MAX_METADATA_CHARS:
            codes[key] = OFFSET_METADATA_TOO_LARGE
            continue
        try:
            ctx.broker.log(name, p.partition_index)
        except StreamlabError:
            codes[key] = UNKNOWN_TOPIC_OR_PARTITION
            continue
        offsets[TopicPartition(name, p.partition_index)] = OffsetAndMetadata(p.committed_offset, metadata)
        codes[key] = NONE
    if group is None:
        if generation >= 0:  # a generation of a group we do not know: from before a restart
            return {key: ILLEGAL_GENERATION if code == NONE else code for key, code in codes.items()}
        if offsets:
            commit(ctx.broker, body.group_id, offsets)
        return codes
    with group.cv:
        try:
            group.check_commit(body.member_id, generation, getattr(body, "group_instance_id", None))
        except StreamlabError as exc:
            return {key: exc.kafka_code if code == NONE else code for key, code in codes.items()}
        if offsets:
            commit(ctx.broker, body.group_id, offsets)
    return codes


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    codes = await asyncio.to_thread(_commit, ctx, body)
    return build(
        t.OffsetCommitResponse,
        throttle_time=ZERO,
        topics=tuple(
            build(
                t.OffsetCommitResponseTopic,
                name=topic.name,
                partitions=tuple(
                    build(
                        t.OffsetCommitResponsePartition,
                        partition_index=p.partition_index,
                        error_code=error_code(codes[(topic.name, p.partition_index)]),
                    )
                    for p in topic.partitions
                ),
            )
            for topic in body.topics
        ),
    )
