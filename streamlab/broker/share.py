"""Share groups on the broker: members, fetching under acquisition locks, acknowledgements,
dead letters, and the registry of a broker's share groups.

Every member of a share group reads every partition of the group's topics; the
:class:`~streamlab.groups.share.SharePartition` of each (group, topic, partition) decides
which records each fetch hands out. Expiry is lazy: every call into a group first expires
members whose session ran out (their records come back) and locks that ran out, so there
is no background thread. A record archived as rejected or past the delivery count limit is
copied to the group's dead-letter topic, when it has one, before the state change is
saved, so a crash in between gives a duplicate dead letter rather than a lost one.

The registry (:func:`share_groups`) is attached to a broker on first use and loads the
groups stored in the catalog, so share-group state survives a broker restart.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker
from streamlab.broker.produce import append
from streamlab.broker.topics import create_topic
from streamlab.errors import ConfigError, UnknownMemberError
from streamlab.groups.share import (
    AckType,
    CatalogShareStore,
    DeadLetter,
    GroupTypeError,
    RecordState,
    ShareGroupConfig,
    SharePartition,
    now_ms,
)
from streamlab.model.partitioner import partition_for_key
from streamlab.model.types import TopicPartition
from streamlab.storage.parquet_log import ParquetPartitionLog
from streamlab.storage.schema import build_batch

DLQ_HEADER = "streamlab.dlq"  # header names: streamlab.dlq.reason, .group, .source.topic, ...
DEFAULT_SESSION_TIMEOUT_MS = 45_000  # share.session.timeout.ms


@dataclass(slots=True)
class ShareMember:
    member_id: str
    client_id: str
    topics: tuple[str, ...]
    session_timeout_ms: int
    last_seen: float  # time.monotonic()
    rotation: int = 0
    epoch: int = 1  # member epoch (KIP-932 heartbeats): bumped when its partitions change
    assigned: tuple[TopicPartition, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """Records of one partition handed to a member by one fetch, with their delivery counts."""

    topic: str
    partition: int
    table: pa.Table
    delivery_counts: dict[int, int]


class ShareGroup:
    """One share group: its config, members and share-partitions. Thread-safe."""

    def __init__(
        self,
        broker: Broker,
        store: CatalogShareStore,
        group_id: str,
        config: ShareGroupConfig,
        partitions: Iterable[SharePartition] = (),
    ) -> None:
        self._broker = broker
        self._store = store
        self.group_id = group_id
        self.config = config
        self.members: dict[str, ShareMember] = {}
        self.partitions: dict[TopicPartition, SharePartition] = {
            TopicPartition(sp.topic, sp.partition): sp for sp in partitions
        }
        self.lock = threading.RLock()

    # members ------------------------------------------------------------------------------
    def join(
        self, *, client_id: str, topics: Sequence[str], session_timeout_ms: int, member_id: str | None = None
    ) -> str:
        """Add a member (``member_id`` is chosen by the client over the wire, here otherwise);
        a member that joins again under the same id keeps what it holds."""
        with self.lock:
            member_id = member_id or f"{client_id}-{uuid.uuid4().hex[:8]}"
            old = self.members.get(member_id)
            self.members[member_id] = ShareMember(member_id, client_id, tuple(topics), session_timeout_ms,
                                                  time.monotonic(), epoch=old.epoch + 1 if old else 1)  # fmt: skip
            for tp in self._topic_partitions(topics):
                self._partition(tp)
            self._sweep(now_ms())
            return member_id

    def heartbeat(self, member_id: str, topics: Sequence[str] | None) -> ShareMember:
        """Keep ``member_id`` alive, change its topics if given, and bring its assignment up
        to date: every partition of its topics (each member of a share group reads them all).
        The member epoch moves when the assignment does."""
        with self.lock:
            self._sweep(now_ms())
            member = self._touch(member_id)
            if topics is not None:
                member.topics = tuple(topics)
            assigned = tuple(self._topic_partitions(member.topics))
            for tp in assigned:
                self._partition(tp)
            if assigned != member.assigned:
                member.assigned = assigned
                member.epoch += 1
            return member

    def leave(self, member_id: str) -> None:
        """The member is gone: what it holds becomes available again (delivery counts kept)."""
        with self.lock:
            if self.members.pop(member_id, None) is None:
                return
            dead = [d for sp in self.partitions.values() for d in sp.release_member(member_id)]
            self._finish(dead)
        self._broker.notify_data()

    def _touch(self, member_id: str) -> ShareMember:
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(
                f"member {member_id!r} is not in share group {self.group_id!r} (its session expired or it left)"
            )
        member.last_seen = time.monotonic()
        return member

    # records ------------------------------------------------------------------------------
    def fetch(
        self, member_id: str, max_records: int, lock_ms: int, only: Iterable[TopicPartition] | None = None
    ) -> list[Delivery]:
        """Acquire up to ``max_records`` records for ``member_id`` across its topics'
        partitions (or those of ``only``: a wire member's share session), starting at a
        different partition each time, and read them."""
        with self.lock:
            now = now_ms()
            self._sweep(now)
            member = self._touch(member_id)
            tps = self._topic_partitions(member.topics)
            if only is not None:
                wanted = set(only)
                tps = [tp for tp in tps if tp in wanted]
            if not tps:
                return []
            member.rotation = (member.rotation + 1) % len(tps)
            plan: list[tuple[TopicPartition, list[tuple[int, int]]]] = []
            left = max_records
            for tp in tps[member.rotation :] + tps[: member.rotation]:
                if left <= 0:
                    break
                log = self._broker.log(tp.topic, tp.partition)
                sp = self._partition(tp)
                got = sp.acquire(member_id, left, lock_ms, now_ms=now, log_start=log.log_start_offset,
                                 log_end=log.high_watermark)  # fmt: skip
                if got:
                    plan.append((tp, got))
                    left -= len(got)
            self._finish([])
        out: list[Delivery] = []
        gaps: dict[TopicPartition, list[int]] = {}
        for tp, got in plan:
            table = _read_offsets(self._broker.log(tp.topic, tp.partition), [o for o, _ in got])
            present = set(table.column("offset").to_pylist())
            if missing := [o for o, _ in got if o not in present]:
                gaps[tp] = missing
            if table.num_rows:
                out.append(Delivery(tp.topic, tp.partition, table, {o: n for o, n in got if o in present}))
        if gaps:
            with self.lock:
                for tp, missing in gaps.items():
                    self.partitions[tp].archive_gaps(member_id, missing)
                self._finish([])
        return out

    def acknowledge(self, member_id: str, tp: TopicPartition, offsets: Sequence[int], kind: AckType) -> list[int]:
        """Apply ``kind`` to ``offsets``; returns the offsets ``member_id`` does not hold."""
        with self.lock:
            now = now_ms()
            self._sweep(now)
            if member_id in self.members:
                self._touch(member_id)
            sp = self.partitions.get(tp)
            if sp is None:
                return list(offsets)
            refused, dead = sp.acknowledge(member_id, offsets, kind, now_ms=now)
            self._finish(dead)
        if kind == "release":
            self._broker.notify_data()
        return refused

    def renew(self, member_id: str, tp: TopicPartition, offsets: Sequence[int], lock_ms: int) -> list[int]:
        """Extend the locks ``member_id`` holds on ``offsets``; returns the ones it does not hold."""
        with self.lock:
            now = now_ms()
            self._sweep(now)
            if member_id in self.members:
                self._touch(member_id)
            sp = self.partitions.get(tp)
            return list(offsets) if sp is None else sp.renew(member_id, offsets, lock_ms, now_ms=now)

    # views -----------------------------------------------------------------------------------
    def state_rows(self) -> list[dict[str, Any]]:
        """One row per in-flight record (between SPSO and SPEO)."""
        with self.lock:
            self._sweep(now_ms())
            return [
                {"topic": tp.topic, "partition": tp.partition, "offset": rec.offset, "state": str(rec.state),
                 "delivery_count": rec.delivery_count, "owner": rec.owner, "lock_expires_ms": rec.lock_expires_ms}
                for tp, sp in sorted(self.partitions.items())
                for rec in (sp.records[o] for o in sorted(sp.records))
            ]  # fmt: skip

    def partition_rows(self) -> list[dict[str, Any]]:
        """One row per share-partition: SPSO, SPEO, the log's range and counts by state."""
        with self.lock:
            self._sweep(now_ms())
            rows = []
            for tp, sp in sorted(self.partitions.items()):
                log = self._broker.log(tp.topic, tp.partition)
                rows.append({"topic": tp.topic, "partition": tp.partition, "start_offset": sp.start_offset,
                             "end_offset": sp.end_offset, "log_start_offset": log.log_start_offset,
                             "high_watermark": log.high_watermark, **sp.counts(),
                             "not_yet_delivered": max(log.high_watermark - sp.end_offset, 0)})  # fmt: skip
            return rows

    def member_rows(self) -> list[dict[str, Any]]:
        with self.lock:
            self._sweep(now_ms())
            return [
                {"member": m.member_id, "client_id": m.client_id, "topics": list(m.topics),
                 "held": sum(len(sp.held_by(m.member_id)) for sp in self.partitions.values())}
                for m in self.members.values()
            ]  # fmt: skip

    # internals --------------------------------------------------------------------------------
    def _topic_partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        return [
            TopicPartition(t, p) for t in topics if t in self._broker.topics
            for p in range(self._broker.topics[t].partitions)
        ]  # fmt: skip

    def _partition(self, tp: TopicPartition) -> SharePartition:
        sp = self.partitions.get(tp)
        if sp is None:
            log = self._broker.log(tp.topic, tp.partition)
            start = log.log_start_offset if self.config.auto_offset_reset == "earliest" else log.high_watermark
            sp = self.partitions[tp] = SharePartition(self.group_id, tp.topic, tp.partition, self.config, start, start)
            self._store.save(sp)
        return sp

    def _sweep(self, now: int) -> None:
        """Expire silent members and run-out locks; forget deleted topics."""
        dead: list[DeadLetter] = []
        mono = time.monotonic()
        for member in list(self.members.values()):
            if mono - member.last_seen > member.session_timeout_ms / 1000:
                del self.members[member.member_id]
                dead.extend(d for sp in self.partitions.values() for d in sp.release_member(member.member_id))
        for tp in [tp for tp in self.partitions if tp.topic not in self._broker.topics]:
            del self.partitions[tp]
            self._store.delete_partitions(self.group_id, tp.topic)
        for sp in self.partitions.values():
            dead.extend(sp.expire(now))
        self._finish(dead)

    def _finish(self, dead: list[DeadLetter]) -> None:
        """Copy dead letters to the dead-letter topic, then save what changed."""
        if dead and self.config.dead_letter_topic is not None:
            self._write_dead_letters(self.config.dead_letter_topic, dead)
        for sp in self.partitions.values():
            self._store.save(sp)

    def _write_dead_letters(self, topic: str, dead: list[DeadLetter]) -> None:
        if topic not in self._broker.topics:  # deleted since the group named it
            create_topic(self._broker, topic, 1)
        partitions = self._broker.topic(topic).partitions
        now = now_ms()
        for letter in dead:
            if letter.topic not in self._broker.topics:
                continue
            table = _read_offsets(self._broker.log(letter.topic, letter.partition), [letter.offset])
            if not table.num_rows:
                continue  # deleted by retention or compaction meanwhile: nothing to copy
            row = table.to_pylist()[0]
            source_ts = int(table.column("timestamp").cast(pa.int64())[0].as_py())
            headers = [(h["key"], h["value"]) for h in row["headers"] or []] + [
                (f"{DLQ_HEADER}.{name}", str(value).encode())
                for name, value in (
                    ("reason", letter.reason), ("group", self.group_id), ("source.topic", letter.topic),
                    ("source.partition", letter.partition), ("source.offset", letter.offset),
                    ("source.timestamp", source_ts), ("delivery.count", letter.delivery_count),
                )
            ]  # fmt: skip
            key = row["key"]
            partition = partition_for_key(key, partitions) if key is not None else letter.partition % partitions
            batch = build_batch(
                base_offset=0, timestamps=[now], keys=[key], key_formats=[row["key_format"]], values=[row["value"]],
                value_formats=[row["value_format"]], headers=[headers],
            )  # fmt: skip
            append(self._broker, topic, partition, batch, sync=True)


def _read_offsets(log: ParquetPartitionLog, offsets: Sequence[int]) -> pa.Table:
    """The records at ``offsets`` (sorted) that the log still holds."""
    pieces = []
    for start, stop in _runs(sorted(offsets)):
        table = log.read(start, stop - start)
        column = table.column("offset")
        mask = pc.and_(pc.greater_equal(column, start), pc.less(column, stop))
        pieces.append(table.filter(mask))
    return pa.concat_tables(pieces) if pieces else log.read(0, 0)


def _runs(offsets: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and runs[-1][1] == offset:
            runs[-1] = (runs[-1][0], offset + 1)
        else:
            runs.append((offset, offset + 1))
    return runs


class ShareGroupRegistry:
    """The share groups of one broker, loaded from the catalog when first needed."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._lock = threading.Lock()
        self.store = CatalogShareStore(broker.catalog)
        self._groups: dict[str, ShareGroup] = {}
        for group_id, config in self.store.groups().items():
            group = ShareGroup(broker, self.store, group_id, config, self.store.load(group_id, config))
            self._groups[group_id] = group
            with group.lock:
                group._sweep(now_ms())  # records acquired when the broker stopped come back now

    def open_for_wire(self, group_id: str) -> ShareGroup:
        """The share group ``group_id`` with its stored config, created with the defaults if
        new (over the wire, settings come from group configs, not from each member)."""
        check_not_classic(self._broker, group_id)
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                config = ShareGroupConfig()
                group = self._groups[group_id] = ShareGroup(self._broker, self.store, group_id, config)
                self.store.save_group(group_id, config)
            return group

    def configure(self, group_id: str, changes: dict[str, Any]) -> ShareGroupConfig:
        """Change settings of ``group_id`` (created if new), whatever members it has:
        Kafka's group configs apply to what happens next."""
        group = self.open_for_wire(group_id)
        with group.lock:
            merged = ShareGroupConfig.from_json(group.config.to_json())
            for name, value in changes.items():
                setattr(merged, name, value)
            merged.__post_init__()  # validate the result as a whole
            dlq = merged.dead_letter_topic
            if dlq is not None and dlq not in self._broker.topics:
                create_topic(self._broker, dlq, 1)
            group.config = merged
            for sp in group.partitions.values():
                sp.config = merged
            self.store.save_group(group_id, merged)
            return merged

    def get(self, group_id: str) -> ShareGroup | None:
        with self._lock:
            return self._groups.get(group_id)

    def groups(self) -> dict[str, ShareGroup]:
        with self._lock:
            return dict(self._groups)

    def open(self, group_id: str, config: ShareGroupConfig, topics: Sequence[str]) -> ShareGroup:
        """The share group ``group_id``, created if new; ``config`` becomes its config when it
        has no members, and must match it when it has."""
        check_not_classic(self._broker, group_id)
        if config.dead_letter_topic is not None:
            if config.dead_letter_topic in topics:
                raise ConfigError(f"the dead-letter topic {config.dead_letter_topic!r} is one the group reads")
            if config.dead_letter_topic not in self._broker.topics:
                create_topic(self._broker, config.dead_letter_topic, 1)
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                group = self._groups[group_id] = ShareGroup(self._broker, self.store, group_id, config)
                self.store.save_group(group_id, config)
                return group
        with group.lock:
            group._sweep(now_ms())
            if group.config != config:
                if group.members:
                    raise ConfigError(
                        f"share group {group_id!r} has {len(group.members)} members using {group.config}; "
                        f"a new member asked for {config}. Use the same settings, or close the members first"
                    )
                group.config = config
                for sp in group.partitions.values():
                    sp.config = config
                self.store.save_group(group_id, config)
        return group


_registries: weakref.WeakKeyDictionary[Broker, ShareGroupRegistry] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def share_groups(broker: Broker) -> ShareGroupRegistry:
    """The broker's share-group registry, created (and loaded from the catalog) on first use."""
    broker.check_open()
    with _registries_lock:
        registry = _registries.get(broker)
        if registry is None:
            registry = _registries[broker] = ShareGroupRegistry(broker)
        return registry


def check_not_classic(broker: Broker, group_id: str) -> None:
    """Raise :class:`GroupTypeError` if ``group_id`` is a classic consumer group: it has
    active members or committed offsets."""
    live = broker.groups.groups().get(group_id)
    members = len(live.members) if live is not None else 0
    offsets = broker.catalog.committed(group_id)
    if members or offsets:
        what = f"{members} active members" if members else f"committed offsets for {len(offsets)} partitions"
        raise GroupTypeError(
            f"{group_id!r} is a classic consumer group ({what}); a share group needs a name of its own"
        )


def check_not_share(broker: Broker, group_id: str) -> None:
    """Raise :class:`GroupTypeError` if ``group_id`` is a share group (for classic consumers)."""
    if share_groups(broker).get(group_id) is not None:
        raise GroupTypeError(f"{group_id!r} is a share group; a classic consumer group needs a name of its own")


def join_share_group(
    broker: Broker,
    group_id: str,
    topics: Sequence[str],
    config: ShareGroupConfig,
    *,
    client_id: str,
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
) -> tuple[ShareGroup, str]:
    """Open (or create) the share group and join it; returns the group and the member id."""
    for topic in topics:
        broker.topic(topic)
    group = share_groups(broker).open(group_id, config, topics)
    return group, group.join(client_id=client_id, topics=topics, session_timeout_ms=session_timeout_ms)


def share_state(broker: Broker, group_id: str) -> list[dict[str, Any]]:
    """One row per in-flight record of ``group_id`` (empty for an unknown group)."""
    group = share_groups(broker).get(group_id)
    return [] if group is None else group.state_rows()


def share_partitions(broker: Broker, group_id: str) -> list[dict[str, Any]]:
    """One row per share-partition of ``group_id``: SPSO, SPEO, log range, counts by state."""
    group = share_groups(broker).get(group_id)
    return [] if group is None else group.partition_rows()


def list_share_groups(broker: Broker) -> list[dict[str, Any]]:
    rows = []
    for group_id, group in sorted(share_groups(broker).groups().items()):
        with group.lock:
            in_flight = sum(
                1 for sp in group.partitions.values() for r in sp.records.values() if r.state == RecordState.ACQUIRED
            )
            rows.append({"group": group_id, "members": len(group.members), "partitions": len(group.partitions),
                         "acquired": in_flight, "delivery_count_limit": group.config.delivery_count_limit,
                         "dead_letter_topic": group.config.dead_letter_topic})  # fmt: skip
    return rows
