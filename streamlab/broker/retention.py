"""Retention (delete old segments) and compaction (latest record per key)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from streamlab.broker.core import Broker
from streamlab.broker.transaction_registry import compaction_view
from streamlab.errors import CorruptSegmentError, StorageError

log = logging.getLogger("streamlab.broker")


@dataclass(frozen=True, slots=True)
class RetentionResult:
    segments_deleted: int
    records_compacted: int


def apply_retention(broker: Broker, *, now_ms: int) -> RetentionResult:
    """Retention and compaction over every partition. A partition that cannot be cleaned
    now (disk full, damaged segments) is skipped with a warning; the others go on, and
    the next round tries again: cleaning is never worth failing a broker for."""
    deleted = compacted = 0
    with broker.lock:
        for state in broker.topics.values():
            for partition_log in state.logs:
                try:
                    deleted += partition_log.apply_retention(state.config, now_ms)
                    partition_log.wire_batches.drop_below(partition_log.log_start_offset)
                    aborted, stable = compaction_view(broker, state.name, partition_log.partition)
                    removed = partition_log.compact(state.config, now_ms, aborted=aborted, stable_offset=stable)
                    compacted += removed
                    if removed:
                        # A compacted topic's log start seldom moves, so its producers' batches
                        # would outgrow the compacted log for good; its sealed range is served
                        # as rows from now on (where it lost records it had to be anyway).
                        partition_log.wire_batches.drop_below(partition_log.sealed_segments()[-1].last_offset + 1)
                except (StorageError, CorruptSegmentError) as exc:
                    log.warning("%s/%d: retention and compaction skipped: %s",
                                state.name, partition_log.partition, exc)  # fmt: skip
    return RetentionResult(deleted, compacted)
