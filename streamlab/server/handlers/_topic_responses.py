"""Responses listed by topic, then by partition (a helper: its name starts with ``_``).

Most partition-level APIs answer with one entry per topic holding one entry per partition;
only the kio types and the partition fields differ. :func:`topic_responses` builds that
nesting from each partition's fields, :func:`partition_errors` the common case of an error
code per requested partition (OffsetCommit, TxnOffsetCommit, OffsetDelete).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from streamlab.server.responses import build, error_code

PartitionKey = tuple[str, int]  # (topic name, partition index) as the request names it


def topic_responses(
    topic_type: Any,
    partition_type: Any,
    topics: Iterable[tuple[Any, Iterable[Mapping[str, Any]]]],
    *,
    topic_field: str = "name",
) -> tuple[Any, ...]:
    """One ``topic_type`` per (topic, its partitions' fields); the topic goes in ``topic_field``
    (``name``, or ``topic_id`` for the APIs that name topics by id)."""
    return tuple(
        build(topic_type, **{topic_field: topic}, partitions=tuple(build(partition_type, **p) for p in partitions))
        for topic, partitions in topics
    )


def partition_errors(
    topic_type: Any, partition_type: Any, requested: Sequence[Any], code_of: Callable[[PartitionKey], int]
) -> tuple[Any, ...]:
    """The answer of every partition of the ``requested`` topics: its error code only."""

    def answers(topic: Any) -> list[dict[str, Any]]:
        return [
            {"partition_index": p.partition_index, "error_code": error_code(code_of((topic.name, p.partition_index)))}
            for p in topic.partitions
        ]

    return topic_responses(topic_type, partition_type, ((topic.name, answers(topic)) for topic in requested))


def failing_the_rest(codes: Mapping[PartitionKey, int], code: int) -> dict[PartitionKey, int]:
    """``codes`` with every partition that had no error of its own failing with ``code``
    (the group or transaction refused the commit as a whole)."""
    return {key: code if own == 0 else own for key, own in codes.items()}


def every_partition(requested: Sequence[Any], code: int) -> dict[PartitionKey, int]:
    """``code`` for every partition of the ``requested`` topics (a refusal of the whole request)."""
    return {(topic.name, p.partition_index): code for topic in requested for p in topic.partitions}
