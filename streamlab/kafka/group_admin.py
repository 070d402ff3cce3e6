"""Consumer groups on a Kafka cluster, for :class:`~streamlab.kafka.backend.KafkaBackend`: listing
and describing groups, their committed offsets and lag, and resetting those offsets, all
through the AdminClient.

Functions of the lab rather than methods on it: they only read the cluster through the
lab's admin client and offset lookups, and keeping them here keeps the lab a short table
of contents of the Lab API.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck
import pandas as pd

from streamlab.errors import GroupNotEmptyError, OperationTimeoutError, UnknownMemberError, UnsupportedOperationError
from streamlab.kafka import translate
from streamlab.model.group_offsets import RESET_COLUMNS, lag_frame, lag_row, named_targets, reset_plan
from streamlab.model.timeparse import to_ms
from streamlab.model.types import TopicPartition

if TYPE_CHECKING:
    from streamlab.kafka.backend import KafkaBackend

__all__ = ["committed", "describe_group", "groups", "lag", "reset_offsets"]

_STATES = {"STABLE": "Stable", "EMPTY": "Empty", "DEAD": "Dead", "UNKNOWN": "Unknown",
           "PREPARING_REBALANCING": "PreparingRebalance", "COMPLETING_REBALANCING": "CompletingRebalance"}  # fmt: skip


def _admin_call(lab: KafkaBackend, future: concurrent.futures.Future[Any], what: str) -> Any:
    try:
        return future.result(timeout=lab.timeout + 5)
    except ck.KafkaException as exc:
        raise translate(exc, context=what) from exc
    except concurrent.futures.TimeoutError as exc:
        raise OperationTimeoutError(f"{what} timed out after {lab.timeout} s") from exc


def _describe_groups(lab: KafkaBackend, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    futures = lab._admin.describe_consumer_groups(ids, request_timeout=lab.timeout)
    return {g: _admin_call(lab, f, f"describing group {g!r}") for g, f in sorted(futures.items())}


def groups(lab: KafkaBackend) -> pd.DataFrame:
    # Consumer groups only (ListGroups without a type filter): share groups need the
    # embedded broker's view, as does their per-record state.
    columns = ["group", "type", "state", "generation", "members", "assignor"]
    listed = _admin_call(lab, lab._admin.list_consumer_groups(request_timeout=lab.timeout), "listing groups")
    if listed.errors and not listed.valid:
        raise translate(listed.errors[0], context="listing consumer groups (ListGroups)")
    ids = sorted(g.group_id for g in listed.valid)
    # ListGroups v5 says each group's type (KIP-848): "consumer" groups are told apart
    types = {g.group_id: _group_type(g) for g in listed.valid}
    described = _describe_groups(lab, ids)
    rows = [
        {"group": g, "type": types.get(g, "classic"), "state": _STATES.get(d.state.name, str(d.state)),
         "generation": pd.NA, "members": len(d.members), "assignor": d.partition_assignor or ""}
        for g, d in described.items()
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=columns)
    df["generation"] = df["generation"].astype("Int64")
    return df


def _group_type(listing: Any) -> str:
    kind = getattr(listing, "type", None)
    name = getattr(kind, "name", str(kind or "")).lower()
    return "consumer" if name == "consumer" else "classic"


def describe_group(lab: KafkaBackend, group: str) -> pd.DataFrame:
    described = _describe_groups(lab, [group]).get(group)
    rows = [
        {"member": m.member_id, "client_id": m.client_id, "host": m.host, "topic": tp.topic,
         "partition": tp.partition}
        for m in (described.members if described is not None else [])
        for tp in (m.assignment.topic_partitions if m.assignment else [])
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=["member", "client_id", "host", "topic", "partition"])
    # confluent-kafka's describe_consumer_groups (2.16) does not give member epochs, even of
    # consumer-protocol groups
    df["member_epoch"] = pd.Series(pd.NA, index=df.index, dtype="Int64")
    return df


def committed(lab: KafkaBackend, group: str, topics: Sequence[str] | None = None) -> dict[TopicPartition, int]:
    """The group's committed offsets on ``topics`` (default: all)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    if topics is None:  # one request asks for all of them; the mock cluster answers it with nothing
        futures = lab._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=lab.timeout
        )
        answer = _admin_call(lab, futures[group], f"reading the committed offsets of group {group!r}")
        found = {TopicPartition(p.topic, p.partition): p.offset for p in answer.topic_partitions or [] if p.offset >= 0}
        if found:
            return found
    listed = lab._metadata().topics
    names = [t for t in (topics or sorted(listed)) if not t.startswith("__")]
    for name in names:
        if name not in listed:
            lab._topic_info(name)  # raises UnknownTopicError
    asked = [ck.TopicPartition(n, p) for n in names for p in sorted(listed[n].partitions)]
    if not asked:
        return {}
    request = [ConsumerGroupTopicPartitions(group, asked)]
    futures = lab._admin.list_consumer_group_offsets(request, request_timeout=lab.timeout)
    answer = _admin_call(lab, futures[group], f"reading the committed offsets of group {group!r}")
    return {TopicPartition(p.topic, p.partition): p.offset for p in answer.topic_partitions if p.offset >= 0}


def lag(lab: KafkaBackend, group: str) -> pd.DataFrame:
    """Per partition: committed offset, end offset, lag in records and in time."""
    offsets = committed(lab, group)
    marks = lab._watermarks(sorted(offsets))

    def record_time(tp: TopicPartition) -> Callable[[int], int | None]:
        def at(offset: int) -> int | None:
            found = lab._record_at(tp, offset)
            return found[1] if found else None

        return at

    return lag_frame([lag_row(tp, offset, *marks[tp], record_time(tp)) for tp, offset in sorted(offsets.items())])


def reset_offsets(
    lab: KafkaBackend, group: str, to: Any = "earliest", *, dry_run: bool = True, topics: list[str] | None = None
) -> pd.DataFrame:
    """Preview moving ``group``'s offsets to "earliest", "latest", a time or {tp: offset};
    ``dry_run=False`` applies it (only while the group has no active members)."""
    current = committed(lab, group, topics)
    targets: dict[TopicPartition, int] = {}
    if isinstance(to, dict):
        targets = named_targets(to, lambda tp: lab._check_partition(tp.topic, tp.partition))
    else:
        chosen = topics or sorted({tp.topic for tp in current})
        tps = [TopicPartition(t, p) for t in chosen for p in range(lab._topic_info(t).partitions)]
        if to in ("earliest", "latest"):
            targets = {tp: marks[0 if to == "earliest" else 1] for tp, marks in lab._watermarks(tps).items()}
        else:
            targets = lab._offsets_for_time(tps, to_ms(to, what="to"))
    rows, new_offsets = reset_plan(targets, current, lab._watermarks(sorted(targets)))
    if not dry_run and new_offsets:
        _apply_offsets(lab, group, [ck.TopicPartition(tp.topic, tp.partition, o) for tp, o in new_offsets.items()])
    return pd.DataFrame(rows, columns=RESET_COLUMNS)


def _apply_offsets(lab: KafkaBackend, group: str, offsets: list[ck.TopicPartition]) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions

    try:
        described = _describe_groups(lab, [group]).get(group)
    except UnsupportedOperationError:
        described = None  # no DescribeGroups: the broker refuses a commit to an active group anyway
    if described is not None and described.members:
        raise GroupNotEmptyError(
            f"group {group!r} has {len(described.members)} active members; close its consumers before resetting"
        )
    request = [ConsumerGroupTopicPartitions(group, offsets)]
    futures = lab._admin.alter_consumer_group_offsets(request, request_timeout=lab.timeout)
    try:
        answer = _admin_call(lab, futures[group], f"resetting the offsets of group {group!r}")
        for p in answer.topic_partitions:
            if p.error is not None:
                raise translate(p.error, topic=p.topic, partition=p.partition)
    except UnknownMemberError as exc:  # how a broker refuses a commit from outside an active group
        raise GroupNotEmptyError(
            f"group {group!r} has active members (the broker refused the commit); close its consumers first"
        ) from exc
