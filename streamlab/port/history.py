"""Where a backend keeps its history samples: offsets over time, for ``lab.lag_history`` and
``lab.throughput_history``.

A sample is what the front's sampler (:mod:`streamlab.front.history`) read at one instant:
each partition's log start and end offset, and each group's committed offset, lag and
time lag per partition. Stores keep facts only; rates are computed when read. The embedded
broker keeps samples in its catalog (:mod:`streamlab.storage.history_store`), so they survive
reopening the directory; a Kafka lab keeps them in memory (:class:`MemoryHistory`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

KEEP_MS = 7 * 24 * 3600 * 1000  # samples older than this are dropped when a new one is added

PartitionSample = tuple[str, int, int, int]  # topic, partition, log start offset, end offset
GroupSample = tuple[str, str, int, int, int, int, int]  # group, topic, partition, committed, end, lag, time lag ms
PartitionRow = tuple[int, int, int, int]  # time ms, partition, log start offset, end offset
GroupRow = tuple[int, str, int, int, int, int, int]  # time ms, topic, partition, committed, end, lag, time lag ms


class HistoryStore(Protocol):
    def add(self, time_ms: int, partitions: Sequence[PartitionSample], groups: Sequence[GroupSample]) -> None:
        """Record one sample (and forget samples older than :data:`KEEP_MS` before it)."""

    def partition_rows(self, topic: str) -> list[PartitionRow]:
        """Every sample of ``topic``'s partitions, by time then partition."""

    def group_rows(self, group: str) -> list[GroupRow]:
        """Every sample of ``group``'s partitions, by time, topic then partition."""

    def names(self) -> tuple[list[str], list[str]]:
        """The topics and the groups that have samples."""


class MemoryHistory:
    """Samples in this process's memory (a ``kafka://`` lab's history ends with the lab)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: list[tuple[int, PartitionSample]] = []
        self._groups: list[tuple[int, GroupSample]] = []

    def add(self, time_ms: int, partitions: Sequence[PartitionSample], groups: Sequence[GroupSample]) -> None:
        with self._lock:
            horizon = time_ms - KEEP_MS
            self._partitions = [r for r in self._partitions if r[0] >= horizon]
            self._groups = [r for r in self._groups if r[0] >= horizon]
            self._partitions.extend((time_ms, s) for s in partitions)
            self._groups.extend((time_ms, s) for s in groups)

    def partition_rows(self, topic: str) -> list[PartitionRow]:
        with self._lock:
            rows = [(t, p, start, end) for t, (name, p, start, end) in self._partitions if name == topic]
        return sorted(rows)

    def group_rows(self, group: str) -> list[GroupRow]:
        with self._lock:
            rows = [(t, topic, p, done, end, lag, lag_ms)
                    for t, (name, topic, p, done, end, lag, lag_ms) in self._groups if name == group]  # fmt: skip
        return sorted(rows)

    def names(self) -> tuple[list[str], list[str]]:
        with self._lock:
            return sorted({s[0] for _, s in self._partitions}), sorted({s[0] for _, s in self._groups})


__all__ = ["KEEP_MS", "GroupRow", "GroupSample", "HistoryStore", "MemoryHistory", "PartitionRow", "PartitionSample"]
