"""Assignments as KIP-848 and KIP-932 carry them (a helper: its name starts with ``_``).

ConsumerGroupHeartbeat, ShareGroupHeartbeat and ConsumerGroupDescribe name a member's
partitions by topic ID, grouped by topic; a topic that has no ID any more (deleted) is
left out, as nothing of it can be owned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streamlab.model.types import TopicPartition
from streamlab.server.context import ServerContext
from streamlab.server.responses import build


def assignment(ctx: ServerContext, t: Any, partitions: Iterable[TopicPartition]) -> Any:
    """``t.Assignment`` of ``partitions``: topics in name order, each with its ID (and its
    name where the version shows it) and its partitions in order."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return build(
        t.Assignment,
        topic_partitions=tuple(
            build(t.TopicPartitions, topic_id=topic_id, topic_name=topic, partitions=tuple(sorted(parts)))
            for topic, parts in sorted(by_topic.items())
            if (topic_id := ctx.topic_ids.id_for(topic)) is not None
        ),
    )
