"""The storage interface the broker talks to.

A *partition log* is an append-only sequence of records with dense offsets. Engines
implement :class:`PartitionLog` and are registered by name in :data:`ENGINES` (see
``engines.py``), so the broker never branches on which engine it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from streamlab.storage.catalog import Catalog, SegmentInfo


class PartitionLog(Protocol):
    topic: str
    partition: int

    @property
    def log_start_offset(self) -> int:
        """Offset of the first retained record (moves forward with retention)."""

    @property
    def high_watermark(self) -> int:
        """Offset the next appended record will get."""

    def append(self, batch: pa.RecordBatch, *, sync: bool) -> int:
        """Store ``batch`` (offsets are reassigned) and return its base offset.

        When this returns, the batch is visible to readers; with ``sync=True`` it is also
        on stable storage.
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

    def apply_retention(self, config: dict[str, Any], now_ms: int) -> int:
        """Delete whole segments past ``retention.ms`` / ``retention.bytes``; return how many."""

    def compact(
        self, config: dict[str, Any], now_ms: int, *, aborted: Sequence[tuple[int, int]] = (),
        stable_offset: int | None = None,
    ) -> int:  # fmt: skip
        """Keep only the latest record per key in sealed segments (records of ``aborted``
        transactions removed, nothing from ``stable_offset`` on cleaned); return records removed."""

    def close(self) -> None: ...


class LogEngine(Protocol):
    def open_log(self, topic: str, partition: int, *, segment_bytes: int) -> PartitionLog: ...

    def delete_topic_files(self, topic: str, logs: list[Any]) -> None:
        """Remove a deleted topic's files, keeping what readers of ``logs`` still hold."""

    def remove_orphans(self, topics: set[str]) -> list[str]:
        """Remove folders of topics the catalog does not know; returns their names."""


class EngineFactory(Protocol):
    def __call__(self, root: Path, catalog: Catalog) -> LogEngine: ...
