"""Retention (delete old segments) and compaction (latest record per key)."""

from __future__ import annotations

from dataclasses import dataclass

from streamlab.broker.core import Broker


@dataclass(frozen=True, slots=True)
class RetentionResult:
    segments_deleted: int
    records_compacted: int


def apply_retention(broker: Broker, *, now_ms: int) -> RetentionResult:
    deleted = compacted = 0
    with broker.lock:
        for state in broker.topics.values():
            for log in state.logs:
                deleted += log.apply_retention(state.config, now_ms)
                compacted += log.compact(state.config, now_ms)
    return RetentionResult(deleted, compacted)
