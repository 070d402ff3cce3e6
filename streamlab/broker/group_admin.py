"""Looking at consumer groups: listing, members, lag, rebalance history, offset resets."""

from __future__ import annotations

from typing import Any

from streamlab.broker.consumer_groups import consumer_groups, list_consumer_groups
from streamlab.broker.core import Broker
from streamlab.broker.offsets import commit, committed, offset_for_time
from streamlab.broker.share_registry import list_share_groups
from streamlab.errors import GroupIdNotFoundError, GroupNotEmptyError, GroupSubscribedToTopicError
from streamlab.groups.state import GroupState
from streamlab.model.group_offsets import lag_row, named_targets, reset_plan
from streamlab.model.types import OffsetAndMetadata, TopicPartition


def list_groups(broker: Broker) -> list[dict[str, Any]]:
    """Classic groups and consumer-protocol (KIP-848) groups: the latter have ``type``
    "consumer" and their group epoch as generation."""
    live = broker.groups.groups()
    consumer_rows = list_consumer_groups(broker)
    names = sorted((set(live) | set(broker.catalog.committed_groups())) - {row["group"] for row in consumer_rows})
    rows = consumer_rows
    recorded = broker.catalog.last_generations()  # groups no member has joined since the broker opened
    for name in names:
        group = live.get(name)
        rows.append(
            {
                "group": name,
                "state": str(group.state) if group else str(GroupState.EMPTY),
                "generation": group.generation if group else recorded.get(name, 0),
                "members": len(group.members) if group else 0,
                "assignor": (group.protocol or "") if group else "",
            }
        )
    return sorted(rows, key=lambda row: row["group"])


def list_all_groups(broker: Broker) -> list[dict[str, Any]]:
    """Classic groups (as :func:`list_groups`) and share groups, each with its ``type``.
    A share group has no generation (None) and no assignor: every member reads every partition."""
    rows = [{"type": "classic", **row} for row in list_groups(broker)]
    rows += [
        {"group": row["group"], "state": "Stable" if row["members"] else "Empty", "generation": None,
         "members": row["members"], "assignor": "", "type": "share"}
        for row in list_share_groups(broker)
    ]  # fmt: skip
    return sorted(rows, key=lambda row: (row["group"], row["type"]))


def describe_group(broker: Broker, group_id: str) -> list[dict[str, Any]]:
    consumer_group = consumer_groups(broker).get(group_id)
    if consumer_group is not None:  # KIP-848: what each member owns now, with its member epoch
        return [
            {"member": m.member_id, "client_id": m.client_id, "host": m.host, "topic": tp.topic,
             "partition": tp.partition, "member_epoch": m.epoch}
            for m in consumer_group.describe().members
            for tp in m.assigned + m.pending_revocation
        ]  # fmt: skip
    group = broker.groups.groups().get(group_id)
    if group is None:
        return []
    with group.cv:
        return [
            {
                "member": m.member_id,
                "client_id": m.client_id,
                "host": m.host,
                "topic": tp.topic,
                "partition": tp.partition,
            }
            for m in group.members.values()
            for tp in (m.assignment or ())
        ]


def lag(broker: Broker, group_id: str) -> list[dict[str, Any]]:
    """Per partition the group has committed: how many records, and how much time, behind."""
    rows = []
    for tp, om in sorted(committed(broker, group_id).items()):
        if tp.topic not in broker.topics:
            continue
        log = broker.log(tp.topic, tp.partition)

        def record_time(offset: int, log: Any = log) -> int | None:
            table = log.read(offset, 1)
            return int(table.column("timestamp")[0].value) if table.num_rows else None

        rows.append(lag_row(tp, om.offset, log.log_start_offset, log.high_watermark, record_time))
    return rows


def rebalances(broker: Broker, group_id: str) -> list[dict[str, Any]]:
    return [
        {"generation": g, "time_ms": t, "reason": r, "member": m, "topic": topic, "partition": p, "change": c}
        for g, t, r, m, topic, p, c in broker.catalog.group_events(group_id)
    ]


def reset_offsets(
    broker: Broker, group_id: str, to: Any, *, dry_run: bool, topics: list[str] | None
) -> list[dict[str, Any]]:
    """Preview (and with ``dry_run=False`` apply) moving a group's committed offsets."""
    from streamlab.model.timeparse import to_ms

    current = committed(broker, group_id)
    chosen = topics or sorted({tp.topic for tp in current})
    targets: dict[TopicPartition, int] = {}
    if isinstance(to, dict):
        targets = named_targets(to, lambda tp: broker.log(tp.topic, tp.partition))
    else:
        for topic in chosen:
            for p, log in enumerate(broker.topic(topic).logs):
                tp = TopicPartition(topic, p)
                if to == "earliest":
                    targets[tp] = log.log_start_offset
                elif to == "latest":
                    targets[tp] = log.high_watermark
                else:
                    targets[tp] = offset_for_time(broker, topic, p, to_ms(to, what="to"))
    marks = {tp: (broker.log(tp.topic, tp.partition).log_start_offset,
                  broker.log(tp.topic, tp.partition).high_watermark) for tp in targets}  # fmt: skip
    rows, new_offsets = reset_plan(targets, {tp: om.offset for tp, om in current.items()}, marks)
    if not dry_run:
        group = broker.groups.groups().get(group_id)
        if group is not None and group.members:
            raise GroupNotEmptyError(
                f"group {group_id!r} has {len(group.members)} active members; close its consumers before resetting"
            )
        commit(broker, group_id, {tp: OffsetAndMetadata(offset) for tp, offset in new_offsets.items()})
    return rows


def delete_group(broker: Broker, group_id: str) -> None:
    """Delete a group with no members, and its committed offsets (Kafka's DeleteGroups)."""
    group = broker.groups.groups().get(group_id)
    if group is not None and group.members:
        raise GroupNotEmptyError(f"group {group_id!r} has {len(group.members)} active members; stop them first")
    kip848 = consumer_groups(broker).get(group_id)  # a consumer-protocol group: dropped only when empty
    if kip848 is not None and not consumer_groups(broker).forget_if_empty(group_id):
        raise GroupNotEmptyError(f"consumer group {group_id!r} has active members; stop them first")
    if group_id not in broker.catalog.committed_groups() and group is None and kip848 is None:
        raise GroupIdNotFoundError(f"no group {group_id!r}")
    broker.catalog.delete_offsets(group_id)


def delete_offsets(broker: Broker, group_id: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Exception]:
    """Forget the group's committed offsets of ``partitions`` (Kafka's OffsetDelete); returns
    the partitions refused, each with its error: those of a topic its members consume."""
    group = broker.groups.groups().get(group_id)
    if group is None and group_id not in broker.catalog.committed_groups():
        raise GroupIdNotFoundError(f"no group {group_id!r}")
    consumed: set[str] = set()
    if group is not None:
        with group.cv:
            consumed = {tp.topic for m in group.members.values() for tp in (m.assignment or ())}
    refused: dict[TopicPartition, Exception] = {
        tp: GroupSubscribedToTopicError(f"group {group_id!r} consumes {tp.topic!r}", topic=tp.topic)
        for tp in partitions
        if tp.topic in consumed
    }
    doomed = [(tp.topic, tp.partition) for tp in partitions if tp not in refused]
    if doomed:
        broker.catalog.delete_offsets(group_id, doomed)
    return refused
