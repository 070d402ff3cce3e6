"""The storage interface the broker talks to.

A *partition log* is an append-only sequence of records with dense offsets. Engines
implement :class:`PartitionLog` and are registered by name in :data:`ENGINES` (see
``engines.py``), so the broker never branches on which engine it has.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from streamlab.errors import CorruptSegmentError
from streamlab.storage.catalog import Catalog, SegmentInfo
from streamlab.storage.wire_batches import WireBatchStore


@dataclasses.dataclass(frozen=True, slots=True)
class Damage:
    """Offsets ``[start, end)`` of a partition that cannot be served, and why."""

    start: int
    end: int
    path: str
    reason: str

    def error(self, topic: str, partition: int) -> CorruptSegmentError:
        return CorruptSegmentError(
            f"{topic}/{partition}: offsets {self.start}..{self.end - 1} cannot be read: {self.reason} ({self.path}); "
            "records before them are readable; run `streamlab check` for a report",
            path=self.path, topic=topic, partition=partition, offset=self.start,
        )  # fmt: skip


@dataclasses.dataclass(slots=True)
class LogSnapshot:
    """A consistent view of one partition for a reader: the sealed segments and active
    records of one instant (no record in both), with the segment files pinned until
    :meth:`release`."""

    segments: list[SegmentInfo]
    paths: list[Path]
    active: pa.Table
    damage: list[Damage]
    log_start: int
    active_fields: pa.StructArray | None = None  # the active values' fields, typed by their producer
    _release: Any = None

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None

    def damage_in(self, start: int, end: int) -> Damage | None:
        """The first damaged range overlapping offsets ``[start, end)``, if any."""
        return next((d for d in self.damage if d.start < end and start < d.end), None)


class PartitionLog(Protocol):
    topic: str
    partition: int

    @property
    def log_start_offset(self) -> int:
        """Offset of the first retained record (moves forward with retention)."""

    @property
    def high_watermark(self) -> int:
        """Offset the next appended record will get."""

    @property
    def active_start(self) -> int:
        """Offset of the first record not yet sealed into a segment (never below the log
        start; the high watermark when there is none). Records are dense from there on."""

    def append(self, batch: pa.RecordBatch, *, sync: bool, now_ms: int | None = None) -> int:
        """Store ``batch`` (offsets are reassigned) and return its base offset.

        When this returns, the batch is visible to readers; with ``sync=True`` it is also
        on stable storage. ``batch`` may carry a ``value_fields`` column (the values'
        fields, typed by their producer) beside the record columns; ``now_ms`` is the
        broker's clock, from which ``segment.ms`` counts a new segment's age.
        """

    def read(self, offset: int, max_records: int) -> pa.Table:
        """Up to ``max_records`` records with offsets >= ``offset`` (base columns only)."""

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        """The earliest offset whose timestamp is >= ``timestamp_ms`` (None: no such record)."""

    def sealed_segments(self) -> list[SegmentInfo]: ...

    def active_table(self) -> pa.Table:
        """Records not yet sealed into a segment, for queries that read everything."""

    def size_bytes(self) -> int: ...

    def roll(self) -> None:
        """Seal the active segment now (no-op when it is empty)."""

    def roll_if_older(self, segment_ms: int, now_ms: int) -> bool:
        """Seal the active segment if its first record was appended ``segment_ms`` or more
        before ``now_ms``; whether it did."""

    def apply_retention(self, config: dict[str, Any], now_ms: int) -> int:
        """Delete whole segments past ``retention.ms`` / ``retention.bytes``; return how many."""

    def compact(
        self, config: dict[str, Any], now_ms: int, *, aborted: Sequence[tuple[int, int]] = (),
        stable_offset: int | None = None,
    ) -> int:  # fmt: skip
        """Keep only the latest record per key in sealed segments (records of ``aborted``
        transactions removed, nothing from ``stable_offset`` on cleaned); return records removed."""

    def close(self) -> None: ...

    # What the broker's readers, checks and the wire server need beyond appending and reading.
    segment_bytes: int
    damage: list[Damage]
    wire_batches: WireBatchStore  # the batches as producers sent them: a cache beside the rows

    @property
    def append_lock(self) -> threading.RLock:
        """Held across an append and whatever must stay next to it (a transaction's index entry)."""

    def sync(self) -> None:
        """Make every appended record durable."""

    def snapshot(self) -> LogSnapshot:
        """Sealed segments and active records of one instant, files pinned until released."""

    def verify_once(self, seg: SegmentInfo) -> None:
        """Check a sealed segment's checksum (once per process); damage is recorded."""

    def delete_records(self, offset: int) -> int:
        """Move the log start to ``offset`` (Kafka's DeleteRecords); returns the new log start."""

    def check(self) -> list[Damage]:
        """Verify every file of the log; returns the damage found."""

    def repair(self, quarantine: Path) -> list[str]:
        """Take damaged parts out of the log, keeping them under ``quarantine``; says what it did."""

    @property
    def pinned(self) -> bool:
        """Whether a reader's snapshot still holds files of this log."""

    def discard(self) -> None:
        """Remove the files of this closed log, once no reader holds them."""


class LogEngine(Protocol):
    def open_log(self, topic: str, partition: int, *, segment_bytes: int) -> PartitionLog: ...

    def delete_topic_files(self, topic: str, logs: list[PartitionLog]) -> None:
        """Remove a deleted topic's files, keeping what readers of ``logs`` still hold."""

    def remove_orphans(self, topics: set[str]) -> list[str]:
        """Remove folders of topics the catalog does not know; returns their names."""


class EngineFactory(Protocol):
    def __call__(self, root: Path, catalog: Catalog) -> LogEngine: ...
