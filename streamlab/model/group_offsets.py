"""Lag and offset-reset arithmetic: the same numbers from every backend.

The embedded broker reads offsets and timestamps from its logs, ``kafka://`` from the
cluster; both hand them to these functions, so ``lab.lag`` and ``lab.reset_offsets``
agree to the record wherever the data lives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from streamlab.model.types import TopicPartition, check_offset

LAG_COLUMNS = ["topic", "partition", "committed", "end_offset", "lag", "time_lag_ms"]
RESET_COLUMNS = ["topic", "partition", "current", "new", "replayed", "skipped"]


def lag_row(
    tp: TopicPartition, committed: int, log_start: int, end: int, record_time: Callable[[int], int | None]
) -> dict[str, Any]:
    """How far ``committed`` is behind ``end``: in records (what was deleted below
    ``log_start`` is not owed), and in time from the oldest unread record to the newest
    (``record_time(offset)``: the timestamp of the record at or after ``offset``)."""
    behind = max(end - max(committed, log_start), 0)
    time_lag_ms = 0
    if behind:
        oldest, newest = record_time(max(committed, log_start)), record_time(end - 1)
        if oldest is not None and newest is not None:
            time_lag_ms = newest - oldest
    return {"topic": tp.topic, "partition": tp.partition, "committed": committed, "end_offset": end,
            "lag": behind, "time_lag_ms": time_lag_ms}  # fmt: skip


def lag_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Lag rows as users see them: the time lag as a Timedelta."""
    df = pd.DataFrame(rows, columns=LAG_COLUMNS)
    df["time_lag"] = pd.to_timedelta(df["time_lag_ms"], unit="ms")
    return df.drop(columns="time_lag_ms")


def named_targets(
    to: Mapping[TopicPartition, Any], check_partition: Callable[[TopicPartition], object]
) -> dict[TopicPartition, int]:
    """The targets of a reset to ``{tp: offset}``: each offset checked, each partition
    checked to exist (``check_partition`` raises UnknownPartitionError)."""
    targets: dict[TopicPartition, int] = {}
    for tp, offset in to.items():
        check_offset(offset, what=f"offset for {tp}")
        check_partition(tp)
        targets[tp] = offset
    return targets


def reset_plan(
    targets: Mapping[TopicPartition, int],
    current: Mapping[TopicPartition, int | None],
    marks: Mapping[TopicPartition, tuple[int, int]],
) -> tuple[list[dict[str, Any]], dict[TopicPartition, int]]:
    """The preview of moving a group to ``targets`` (each kept within its partition's
    (log start, high watermark) ``marks``) and the offsets to commit: per partition the
    current and new offset and how many records are read again or skipped (a partition
    with no committed offset is counted from the end, where such a group would start)."""
    rows, new_offsets = [], {}
    for tp, target in sorted(targets.items()):
        low, high = marks[tp]
        new = min(max(target, low), high)
        old = current.get(tp)
        base = old if old is not None else high
        rows.append({"topic": tp.topic, "partition": tp.partition, "current": old, "new": new,
                     "replayed": max(base - new, 0), "skipped": max(new - base, 0)})  # fmt: skip
        new_offsets[tp] = new
    return rows, new_offsets
