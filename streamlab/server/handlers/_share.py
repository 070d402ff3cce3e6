"""What the share-group handlers share (a helper: its name starts with ``_``).

ShareFetch and ShareAcknowledge both carry acknowledgements: batches of offsets
``first..last`` with either one type for the whole batch or one per offset (0 gap,
1 accept, 2 release, 3 reject, 4 renew). :func:`apply_acks` applies them to the broker's
share group and gives each partition its error code. Topic names come from topic IDs
(:mod:`streamlab.server.topic_ids`), as these APIs name topics only by ID. Both first find
the member's group and share session (:func:`member_session`), and a refusal answers the
whole request (:func:`refused`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamlab.broker.share_group import ShareGroup
from streamlab.broker.share_registry import share_groups
from streamlab.errors import StreamlabError, kafka_code_for
from streamlab.model.share import AckType
from streamlab.model.types import TopicPartition
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import GROUP_AUTHORIZATION_FAILED, group_allowed
from streamlab.server.responses import ZERO, build, error_code
from streamlab.server.share_sessions import SessionError, ShareSession

UNKNOWN_TOPIC_OR_PARTITION = 3
UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42
UNKNOWN_TOPIC_ID = 100
INVALID_RECORD_STATE = 121
GAP, ACCEPT, RELEASE, REJECT, RENEW = range(5)
_KINDS: dict[int, AckType] = {ACCEPT: "accept", RELEASE: "release", REJECT: "reject"}


@dataclass
class PartitionResult:
    """What one partition gets in a response: an error, and for ShareFetch records."""

    error: int = 0
    message: str | None = None
    ack_error: int = 0
    ack_message: str | None = None
    records: bytes = b""
    acquired: list[tuple[int, int, int]] = field(default_factory=list)  # first, last, delivery count


def group_of(ctx: ServerContext, group_id: str | None, member_id: str | None) -> ShareGroup | None:
    """The share group ``member_id`` belongs to, or None."""
    if not group_id or not member_id:
        return None
    group = share_groups(ctx.broker).get(group_id)
    return group if group is not None and member_id in group.members else None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a whole ShareFetch or ShareAcknowledge is refused."""

    code: int
    message: str


def member_session(
    ctx: ServerContext, conn: ConnectionInfo, body: Any, *, opening_allowed: bool = True, unknown_hint: str = ""
) -> tuple[ShareGroup, ShareSession] | Refusal:
    """The requesting member's share group and its share session (the request's epoch
    counted), or why the request is refused (``unknown_hint`` ends the message to a member
    the group does not know)."""
    group = group_of(ctx, body.group_id, body.member_id)
    if not group_allowed(ctx, conn, body.group_id):
        return Refusal(GROUP_AUTHORIZATION_FAILED, f"no READ on group {body.group_id!r}")
    if group is None:
        unknown = f"member {body.member_id!r} is not in share group {body.group_id!r}{unknown_hint}"
        return Refusal(UNKNOWN_MEMBER_ID, unknown)
    try:
        session = ctx.share_sessions.use(
            body.group_id, body.member_id, body.share_session_epoch, opening_allowed=opening_allowed
        )
    except SessionError as exc:
        return Refusal(exc.code, str(exc))
    return group, session


def refused(response_type: Any, code: int, message: str) -> Any:
    """A ShareFetch or ShareAcknowledge response refusing the whole request."""
    return build(response_type, throttle_time=ZERO, error_code=error_code(code), error_message=message,
                 acquisition_lock_timeout=ZERO, responses=(), node_endpoints=())  # fmt: skip


def by_topic_id(
    ctx: ServerContext, results: dict[TopicPartition | tuple[Any, int], PartitionResult]
) -> dict[Any, list[tuple[int, PartitionResult]]]:
    """``results`` by topic id, each topic's partitions in index order, as responses list them."""
    grouped: dict[Any, list[tuple[int, PartitionResult]]] = {}
    for key, result in results.items():
        topic_id, index = (ctx.topic_ids.id_for(key.topic), key.partition) if isinstance(key, TopicPartition) else key
        grouped.setdefault(topic_id, []).append((index, result))
    return {topic_id: sorted(parts, key=lambda item: item[0]) for topic_id, parts in grouped.items()}


def resolve(ctx: ServerContext, topic_id: uuid.UUID | None, partition: int) -> tuple[TopicPartition | None, int]:
    """The partition a (topic id, index) names, or None with the error code."""
    name = ctx.topic_ids.name_for(topic_id)
    if name is None:
        return None, UNKNOWN_TOPIC_ID
    if not 0 <= partition < ctx.broker.topics[name].partitions:
        return None, UNKNOWN_TOPIC_OR_PARTITION
    return TopicPartition(name, partition), 0


def _per_offset(batch: Any) -> Iterable[tuple[int, int]]:
    types: Sequence[int] = batch.acknowledge_types
    first, last = int(batch.first_offset), int(batch.last_offset)
    if last < first or not types or (len(types) != 1 and len(types) != last - first + 1):
        raise StreamlabError(f"malformed acknowledgement batch {first}..{last} with {len(types)} types")
    for i, offset in enumerate(range(first, last + 1)):
        yield offset, int(types[0] if len(types) == 1 else types[i])


def apply_acks(
    ctx: ServerContext, group: ShareGroup, member_id: str, topics: Sequence[Any]
) -> dict[TopicPartition | tuple[Any, int], PartitionResult]:
    """Apply every acknowledgement batch of a request (blocking: run it in a worker thread).

    Results are keyed by partition, or by (topic id, index) for a partition that does not
    resolve. A partition's error is INVALID_RECORD_STATE when some offset was not held by
    the member (its lock ran out, or it was acknowledged already).
    """
    results: dict[TopicPartition | tuple[Any, int], PartitionResult] = {}
    for topic in topics:
        for part in topic.partitions:
            batches = part.acknowledgement_batches
            if not batches:
                continue
            tp, code = resolve(ctx, topic.topic_id, int(part.partition_index))
            if tp is None:
                results[(topic.topic_id, int(part.partition_index))] = PartitionResult(ack_error=code, error=code)
                continue
            result = results.setdefault(tp, PartitionResult())
            by_kind: dict[int, list[int]] = {}
            try:
                for batch in batches:
                    for offset, kind in _per_offset(batch):
                        by_kind.setdefault(kind, []).append(offset)
            except StreamlabError as exc:
                result.ack_error, result.ack_message = INVALID_REQUEST, str(exc)
                continue
            refused: list[int] = []
            try:
                for kind, offsets in sorted(by_kind.items()):
                    if kind == RENEW:
                        refused += group.renew(member_id, tp, offsets, group.config.record_lock_ms)
                    elif kind in _KINDS:
                        refused += group.acknowledge(member_id, tp, offsets, _KINDS[kind])
                    elif kind != GAP:  # a gap names an offset with no record: nothing to do
                        raise StreamlabError(f"unknown acknowledge type {kind}")
            except StreamlabError as exc:
                code = kafka_code_for(exc)
                result.ack_error, result.ack_message = (code if code > 0 else INVALID_REQUEST), str(exc)
                continue
            if refused:
                result.ack_error = INVALID_RECORD_STATE
                result.ack_message = f"offsets {sorted(refused)[:10]} are not held by this member (lock expired?)"
    return results


def ranges(counts: dict[int, int]) -> list[tuple[int, int, int]]:
    """Acquired offsets as (first, last, delivery count) runs of consecutive offsets."""
    out: list[tuple[int, int, int]] = []
    for offset in sorted(counts):
        n = counts[offset]
        if out and out[-1][1] == offset - 1 and out[-1][2] == n:
            out[-1] = (out[-1][0], offset, n)
        else:
            out.append((offset, offset, n))
    return out
