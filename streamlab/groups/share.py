"""Share groups (KIP-932, "queues for Kafka"): the state of one share-partition.

A share group reads every partition of its topics with all of its members at once.
For each (group, topic, partition) the broker keeps a *share-partition*: the
share-partition start offset (SPSO), below which every record is done, the end offset
(SPEO), below which every record has been handed out at least once, and between them the
*in-flight* records, each in one of four states:

``available``     may be handed out (again): released, or its lock expired
``acquired``      with one member, under an acquisition lock that expires
``acknowledged``  accepted: processed, done
``archived``      rejected, past the delivery count limit, or not in the log any more

Records at or past SPEO (up to the log's high watermark) are available without being
tracked. Acquiring counts a delivery; a record that comes back (released, lock expired,
its member gone) once it has been delivered ``share.delivery.count.limit`` times is
archived instead, and reported as a :class:`DeadLetter` so the broker can copy it to the
group's dead-letter topic. Rejected records are archived and reported at once. SPSO moves
forward over acknowledged and archived records.

This module holds no locks and does no I/O beyond :func:`save` and :func:`load` (rows in
:class:`~streamlab.storage.share_store.ShareStore`), so a test can drive a
:class:`SharePartition` with any clock; ``streamlab.broker.share_group`` wires it to
partition logs, the dead-letter topic and members.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from streamlab.errors import ConfigError
from streamlab.model.share import ACK_TYPES, AckType, ShareGroupConfig
from streamlab.storage.share_store import ShareStore

# Dead-letter reasons (the ``streamlab.dlq.reason`` header).
REJECTED = "rejected"
DELIVERY_LIMIT = "delivery.count.limit"


class RecordState(StrEnum):
    AVAILABLE = "available"
    ACQUIRED = "acquired"
    ACKNOWLEDGED = "acknowledged"
    ARCHIVED = "archived"


# State -----------------------------------------------------------------------------------
@dataclass(slots=True)
class InFlightRecord:
    """One record between SPSO and SPEO. ``owner`` and ``lock_expires_ms`` are set only
    while the record is acquired (a record acquired when the broker stopped is reloaded
    with no owner and an expired lock, and released by the next :meth:`SharePartition.expire`)."""

    offset: int
    state: RecordState
    delivery_count: int = 0
    owner: str | None = None
    lock_expires_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record archived because it was rejected or ran out of deliveries."""

    topic: str
    partition: int
    offset: int
    delivery_count: int
    reason: str  # REJECTED or DELIVERY_LIMIT


@dataclass(slots=True)
class SharePartition:
    """The share state of one (group, topic, partition). Not thread-safe: the broker
    holds the group's lock around every call. Times are epoch milliseconds."""

    group_id: str
    topic: str
    partition: int
    config: ShareGroupConfig
    start_offset: int  # SPSO
    end_offset: int  # SPEO
    records: dict[int, InFlightRecord] = field(default_factory=dict)
    # offsets whose row must be rewritten, and whether SPSO/SPEO moved, since the last save
    dirty: set[int] = field(default_factory=set)
    moved: bool = True

    # handing out --------------------------------------------------------------------------
    def acquire(
        self, member: str, max_records: int, lock_ms: int, *, now_ms: int, log_start: int, log_end: int
    ) -> list[tuple[int, int]]:
        """Lock up to ``max_records`` available records for ``member``, lowest offsets first;
        returns (offset, delivery_count) pairs. Call :meth:`expire` first."""
        self.trim(log_start, log_end)
        out: list[tuple[int, int]] = []
        for offset in sorted(self.records):
            if len(out) >= max_records:
                break
            rec = self.records[offset]
            if rec.state == RecordState.AVAILABLE:
                out.append(self._lock(rec, member, lock_ms, now_ms))
        fresh_end = min(log_end, self.start_offset + self.config.max_record_locks)
        while len(out) < max_records and self.end_offset < fresh_end:
            rec = self.records[self.end_offset] = InFlightRecord(self.end_offset, RecordState.AVAILABLE)
            out.append(self._lock(rec, member, lock_ms, now_ms))
            self.end_offset += 1
            self.moved = True
        return out

    def unacquire(self, member: str, offsets: Iterable[int]) -> None:
        """Undo :meth:`acquire` for ``offsets`` that were locked but never sent (the response
        was full): available again, and not counted as a delivery."""
        for offset in offsets:
            rec = self.records.get(offset)
            if rec is not None and rec.state == RecordState.ACQUIRED and rec.owner == member:
                rec.state, rec.owner, rec.lock_expires_ms = RecordState.AVAILABLE, None, None
                rec.delivery_count -= 1
                self.dirty.add(offset)

    def _lock(self, rec: InFlightRecord, member: str, lock_ms: int, now_ms: int) -> tuple[int, int]:
        rec.state, rec.owner, rec.lock_expires_ms = RecordState.ACQUIRED, member, now_ms + lock_ms
        rec.delivery_count += 1
        self.dirty.add(rec.offset)
        return rec.offset, rec.delivery_count

    def trim(self, log_start: int, log_end: int) -> None:
        """Follow the log: records retention deleted are gone (archived, no dead letter);
        a log that is shorter than SPEO (topic re-created) starts the state over."""
        if self.end_offset > log_end:
            self.records.clear()
            self.start_offset = self.end_offset = max(log_start, min(log_end, self.start_offset))
            self.moved = True
        if log_start > self.start_offset:
            for offset in [o for o in self.records if o < log_start]:
                del self.records[offset]
            self.start_offset = log_start
            self.end_offset = max(self.end_offset, log_start)
            self.moved = True
        self._advance()

    # coming back ----------------------------------------------------------------------------
    def acknowledge(
        self, member: str, offsets: Iterable[int], kind: AckType, *, now_ms: int
    ) -> tuple[list[int], list[DeadLetter]]:
        """Apply ``kind`` to each offset ``member`` holds; returns (refused offsets, dead letters)."""
        if kind not in ACK_TYPES:
            raise ConfigError(f"acknowledgement type must be one of {list(ACK_TYPES)}, got {kind!r}")
        refused: list[int] = []
        dead: list[DeadLetter] = []
        for offset in offsets:
            rec = self._held(member, offset, now_ms)
            if rec is None:
                refused.append(offset)
            elif kind == "accept":
                self._settle(rec, RecordState.ACKNOWLEDGED)
            elif kind == "reject":
                self._settle(rec, RecordState.ARCHIVED)
                dead.append(self._dead_letter(rec, REJECTED))
            else:
                dead.extend(self._give_back(rec))
        self._advance()
        return refused, dead

    def renew(self, member: str, offsets: Iterable[int], lock_ms: int, *, now_ms: int) -> list[int]:
        """Extend ``member``'s locks to ``now_ms + lock_ms``; returns the offsets it does not hold."""
        refused = []
        for offset in offsets:
            rec = self._held(member, offset, now_ms)
            if rec is None:
                refused.append(offset)
            else:
                rec.lock_expires_ms = now_ms + lock_ms
        return refused

    def expire(self, now_ms: int) -> list[DeadLetter]:
        """Locks that ran out: their records become available (or are archived at the limit)."""
        dead: list[DeadLetter] = []
        for rec in self.records.values():
            if rec.state == RecordState.ACQUIRED and (rec.lock_expires_ms or 0) <= now_ms:
                dead.extend(self._give_back(rec))
        self._advance()
        return dead

    def release_member(self, member: str) -> list[DeadLetter]:
        """Everything ``member`` holds comes back (it left, or its session expired)."""
        dead: list[DeadLetter] = []
        for rec in self.records.values():
            if rec.state == RecordState.ACQUIRED and rec.owner == member:
                dead.extend(self._give_back(rec))
        self._advance()
        return dead

    def archive_gaps(self, member: str, offsets: Iterable[int]) -> None:
        """Offsets handed out that the log does not hold (compacted away): archived, not counted."""
        for offset in offsets:
            rec = self.records.get(offset)
            if rec is not None and rec.state == RecordState.ACQUIRED and rec.owner == member:
                self._settle(rec, RecordState.ARCHIVED)
        self._advance()

    def _held(self, member: str, offset: int, now_ms: int) -> InFlightRecord | None:
        rec = self.records.get(offset)
        if (
            rec is None
            or rec.state != RecordState.ACQUIRED
            or rec.owner != member
            or (rec.lock_expires_ms or 0) <= now_ms
        ):
            return None
        return rec

    def _give_back(self, rec: InFlightRecord) -> list[DeadLetter]:
        if rec.delivery_count >= self.config.delivery_count_limit:
            self._settle(rec, RecordState.ARCHIVED)
            return [self._dead_letter(rec, DELIVERY_LIMIT)]
        self._settle(rec, RecordState.AVAILABLE)
        return []

    def _settle(self, rec: InFlightRecord, state: RecordState) -> None:
        rec.state, rec.owner, rec.lock_expires_ms = state, None, None
        self.dirty.add(rec.offset)

    def _dead_letter(self, rec: InFlightRecord, reason: str) -> DeadLetter:
        return DeadLetter(self.topic, self.partition, rec.offset, rec.delivery_count, reason)

    def _advance(self) -> None:
        """Move SPSO over the records that are done."""
        while self.start_offset < self.end_offset:
            rec = self.records.get(self.start_offset)
            if rec is not None and rec.state not in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED):
                break
            self.records.pop(self.start_offset, None)
            self.start_offset += 1
            self.moved = True

    # looking ---------------------------------------------------------------------------------
    def held_by(self, member: str) -> list[int]:
        return sorted(o for o, r in self.records.items() if r.state == RecordState.ACQUIRED and r.owner == member)

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in RecordState}
        for rec in self.records.values():
            out[str(rec.state)] += 1
        return out


# Persistence (the rows are storage's: streamlab.storage.share_store) -----------------------
def save(store: ShareStore, sp: SharePartition) -> None:
    """Write what changed in ``sp`` since the last save, in one transaction."""
    if not sp.dirty and not sp.moved:
        return
    rows = [sp.records[o] for o in sorted(sp.dirty) if o in sp.records]
    store.save_partition(
        sp.group_id,
        sp.topic,
        sp.partition,
        bounds=(sp.start_offset, sp.end_offset) if sp.moved else None,
        start_offset=sp.start_offset,
        changed=sorted(sp.dirty),
        records=[(r.offset, str(r.state), r.delivery_count) for r in rows],
    )
    sp.dirty.clear()
    sp.moved = False


def load(store: ShareStore, group_id: str, config: ShareGroupConfig) -> list[SharePartition]:
    """The group's share-partitions as stored. Records that were acquired when the broker
    stopped come back acquired by nobody with an expired lock, so the first
    :meth:`SharePartition.expire` makes them available (delivery counts kept) or archives
    them at the limit."""
    out = []
    for stored in store.load(group_id):
        sp = SharePartition(group_id, stored.topic, stored.partition, config, stored.start_offset,
                            stored.end_offset, moved=False)  # fmt: skip
        for offset, state, count in stored.records:
            rec = sp.records[offset] = InFlightRecord(offset, RecordState(state), count)
            if rec.state == RecordState.ACQUIRED:
                rec.lock_expires_ms = 0
        out.append(sp)
    return out


def save_group(store: ShareStore, group_id: str, config: ShareGroupConfig) -> None:
    store.save_group(group_id, config.to_json(), time_ms=now_ms())


def saved_groups(store: ShareStore) -> dict[str, ShareGroupConfig]:
    return {g: ShareGroupConfig.from_json(c) for g, c in store.groups().items()}


def now_ms() -> int:
    """The wall clock in epoch milliseconds (what lock expiry is measured in)."""
    return int(time.time() * 1000)
