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
                    compacted += partition_log.compact(state.config, now_ms, aborted=aborted, stable_offset=stable)
                except (StorageError, CorruptSegmentError) as exc:
                    log.warning("%s/%d: retention and compaction skipped: %s",
                                state.name, partition_log.partition, exc)  # fmt: skip
    return RetentionResult(deleted, compacted)
