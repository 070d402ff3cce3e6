"""One share group on the broker (:class:`ShareGroup`): members, fetching under
acquisition locks, acknowledgements and the rows its views show.

Every member reads every partition of the group's topics; the
:class:`~streamlab.groups.share.SharePartition` of each (group, topic, partition) decides
which records each fetch hands out. Expiry is lazy: every call first expires members
whose session ran out (their records come back) and locks that ran out, so there is no
background thread. Dead letters are copied (:mod:`.dead_letters`) before the state
change is saved, so a crash in between gives a duplicate dead letter, not a lost one.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker
from streamlab.broker.dead_letters import read_offsets, write_dead_letters
from streamlab.errors import UnknownMemberError
from streamlab.groups import share
from streamlab.groups.share import DeadLetter, SharePartition
from streamlab.model.limits import RECORD_OVERHEAD
from streamlab.model.share import AckType, ShareGroupConfig
from streamlab.model.types import TopicPartition
from streamlab.storage.share_store import ShareStore

__all__ = ["DEFAULT_SESSION_TIMEOUT_MS", "Delivery", "ShareGroup", "ShareMember"]

DEFAULT_SESSION_TIMEOUT_MS = 45_000  # share.session.timeout.ms


@dataclass(slots=True)
class ShareMember:
    member_id: str
    client_id: str
    topics: tuple[str, ...]
    session_timeout_ms: int
    last_seen: float  # the broker's clock.monotonic()
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
        store: ShareStore,
        group_id: str,
        config: ShareGroupConfig,
        partitions: Iterable[SharePartition] = (),
    ) -> None:
        self._broker = broker
        self._clock = broker.clock
        self._store = store
        self.group_id = group_id
        self.config = config
        self.members: dict[str, ShareMember] = {}
        self.partitions: dict[TopicPartition, SharePartition] = {
            TopicPartition(sp.topic, sp.partition): sp for sp in partitions
        }
        self.lock = threading.RLock()

    def reconfigure(self, config: ShareGroupConfig) -> None:
        """Take ``config`` (every share-partition too) for what happens next, and store it;
        hold :attr:`lock`."""
        self.config = config
        for sp in self.partitions.values():
            sp.config = config
        share.save_group(self._store, self.group_id, config)

    # members ------------------------------------------------------------------------------
    def join(
        self, *, client_id: str, topics: Sequence[str], session_timeout_ms: int, member_id: str | None = None
    ) -> str:
        """Add a member (``member_id`` is chosen by the client over the wire, here otherwise);
        a member that joins again under the same id keeps what it holds."""
        with self.lock:
            member_id = member_id or f"{client_id}-{uuid.uuid4().hex[:8]}"
            old = self.members.get(member_id)
            epoch = old.epoch + 1 if old else 1
            self.members[member_id] = ShareMember(member_id, client_id, tuple(topics), session_timeout_ms,
                                                  self._clock.monotonic(), epoch=epoch)  # fmt: skip
            for tp in self._topic_partitions(topics):
                self._partition(tp)
            self._sweep(self._clock.time_ms())
            return member_id

    def heartbeat(self, member_id: str, topics: Sequence[str] | None) -> ShareMember:
        """Keep ``member_id`` alive, change its topics if given, and bring its assignment up
        to date: every partition of its topics (each member of a share group reads them all).
        The member epoch moves when the assignment does."""
        with self.lock:
            self._sweep(self._clock.time_ms())
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
        member.last_seen = self._clock.monotonic()
        return member

    # records ------------------------------------------------------------------------------
    def fetch(
        self,
        member_id: str,
        max_records: int,
        lock_ms: int,
        only: Iterable[TopicPartition] | None = None,
        *,
        max_bytes: int | None = None,
    ) -> list[Delivery]:
        """Acquire up to ``max_records`` records for ``member_id`` across its topics'
        partitions (or those of ``only``: a wire member's share session), starting at a
        different partition each time, and read them. With ``max_bytes``, records past that
        many bytes (the first one always goes) are given back unsent, uncounted."""
        with self.lock:
            now = self._clock.time_ms()
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
            table = read_offsets(self._broker.log(tp.topic, tp.partition), [o for o, _ in got])
            present = set(table.column("offset").to_pylist())
            if missing := [o for o, _ in got if o not in present]:
                gaps[tp] = missing
            if table.num_rows:
                out.append(Delivery(tp.topic, tp.partition, table, {o: n for o, n in got if o in present}))
        surplus: dict[TopicPartition, list[int]] = {}
        if max_bytes is not None:
            out, surplus = _within(out, max_bytes)
        if gaps or surplus:
            with self.lock:
                for tp, missing in gaps.items():
                    self.partitions[tp].archive_gaps(member_id, missing)
                for tp, unsent in surplus.items():
                    self.partitions[tp].unacquire(member_id, unsent)
                self._finish([])
            if surplus:
                self._broker.notify_data()  # other members may take what this one could not
        return out

    def acknowledge(self, member_id: str, tp: TopicPartition, offsets: Sequence[int], kind: AckType) -> list[int]:
        """Apply ``kind`` to ``offsets``; returns the offsets ``member_id`` does not hold."""
        with self.lock:
            now, sp = self._swept_partition(member_id, tp)
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
            now, sp = self._swept_partition(member_id, tp)
            return list(offsets) if sp is None else sp.renew(member_id, offsets, lock_ms, now_ms=now)

    def _swept_partition(self, member_id: str, tp: TopicPartition) -> tuple[int, SharePartition | None]:
        """Now, after expired locks and members are swept (``member_id`` kept alive), and
        ``tp``'s share-partition if the group has one; hold :attr:`lock`."""
        now = self._clock.time_ms()
        self._sweep(now)
        if member_id in self.members:
            self._touch(member_id)
        return now, self.partitions.get(tp)

    # views -----------------------------------------------------------------------------------
    def state_rows(self) -> list[dict[str, Any]]:
        """One row per in-flight record (between SPSO and SPEO)."""
        with self.lock:
            self._sweep(self._clock.time_ms())
            return [
                {"topic": tp.topic, "partition": tp.partition, "offset": rec.offset, "state": str(rec.state),
                 "delivery_count": rec.delivery_count, "owner": rec.owner, "lock_expires_ms": rec.lock_expires_ms}
                for tp, sp in sorted(self.partitions.items())
                for rec in (sp.records[o] for o in sorted(sp.records))
            ]  # fmt: skip

    def partition_rows(self) -> list[dict[str, Any]]:
        """One row per share-partition: SPSO, SPEO, the log's range and counts by state."""
        with self.lock:
            self._sweep(self._clock.time_ms())
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
            self._sweep(self._clock.time_ms())
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
            share.save(self._store, sp)
        return sp

    def _sweep(self, now: int) -> None:
        """Expire silent members and run-out locks; forget deleted topics."""
        dead: list[DeadLetter] = []
        mono = self._clock.monotonic()
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
            write_dead_letters(self._broker, self.group_id, self.config.dead_letter_topic, dead)
        for sp in self.partitions.values():
            share.save(self._store, sp)


def _within(deliveries: list[Delivery], max_bytes: int) -> tuple[list[Delivery], dict[TopicPartition, list[int]]]:
    """The deliveries cut to ``max_bytes`` (keys, values and Kafka's per-record overhead;
    at least one record), and the offsets cut off, by partition."""
    kept: list[Delivery] = []
    surplus: dict[TopicPartition, list[int]] = {}
    used = 0
    for d in deliveries:
        sizes = pc.add(
            pc.add(pc.fill_null(pc.binary_length(d.table.column("key")), 0),
                   pc.fill_null(pc.binary_length(d.table.column("value")), 0)),
            RECORD_OVERHEAD,
        ).to_numpy()  # fmt: skip
        ends = used + np.cumsum(sizes)
        fits = int(np.searchsorted(ends, max_bytes, side="right"))
        if not kept and fits == 0:
            fits = 1  # the first record is always sent, however large (as Fetch does)
        if fits:
            table = d.table.slice(0, fits)
            offsets = table.column("offset").to_pylist()
            kept.append(Delivery(d.topic, d.partition, table, {o: d.delivery_counts[o] for o in offsets}))
            used = int(ends[fits - 1])
        if fits < d.table.num_rows:
            surplus[TopicPartition(d.topic, d.partition)] = d.table.column("offset").to_pylist()[fits:]
    return kept, surplus
