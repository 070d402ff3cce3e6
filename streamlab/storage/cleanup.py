"""What ``cleanup.policy`` takes out of a partition log: the sealed segments retention
deletes (``delete``) and the records compaction drops (``compact``). Decisions only, on
catalog rows and Arrow tables; the partition log applies them in one index swap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.model.serde import FMT_CONTROL
from streamlab.storage.catalog import SegmentInfo


def expired_segments(
    segments: list[SegmentInfo], total_bytes: int, config: dict[str, Any], now_ms: int
) -> list[SegmentInfo]:
    """The oldest ``segments`` past ``retention.ms``, or whose removal keeps the log
    (``total_bytes`` now) at ``retention.bytes`` or more: retention deletes whole segments,
    from the start, and stops at the first one it keeps."""
    retention_ms, retention_bytes = config["retention.ms"], config["retention.bytes"]
    doomed: list[SegmentInfo] = []
    for seg in segments:
        expired = retention_ms >= 0 and seg.max_timestamp < now_ms - retention_ms
        too_big = retention_bytes >= 0 and total_bytes - seg.bytes >= retention_bytes
        if not (expired or too_big):
            break
        doomed.append(seg)
        total_bytes -= seg.bytes
    return doomed


def compacted(
    sealed: pa.Table, active: pa.Table, config: dict[str, Any], now_ms: int, *,
    aborted: Sequence[tuple[int, int]], stable_offset: int | None,
) -> pa.Table:  # fmt: skip
    """The records of the ``sealed`` segments a compaction keeps: each key's latest (over
    ``active`` records too), unkeyed records and transaction markers, everything from
    ``stable_offset`` on, and tombstones younger than ``delete.retention.ms``; never a
    record of an ``aborted`` transaction (sorted ``[start, end)`` offset ranges)."""
    everything = pa.concat_tables([sealed, active])
    settled = everything if stable_offset is None else everything.filter(
        pc.less(everything.column("offset"), stable_offset))  # fmt: skip
    keyed = pc.and_(pc.is_valid(settled.column("key")), pc.not_equal(settled.column("key_format"), FMT_CONTROL))
    if aborted:
        keyed = pc.and_(keyed, pa.array(~_in_ranges(settled.column("offset"), aborted)))
    latest = settled.filter(keyed).group_by("key").aggregate([("offset", "max")])
    keep = pc.or_(
        pc.is_in(sealed.column("offset"), latest.column("offset_max")),
        pc.or_(pc.is_null(sealed.column("key")), pc.equal(sealed.column("key_format"), FMT_CONTROL)),
    )
    if stable_offset is not None:
        keep = pc.or_(keep, pc.greater_equal(sealed.column("offset"), stable_offset))
    if aborted:
        keep = pc.and_(keep, pa.array(~_in_ranges(sealed.column("offset"), aborted)))
    old_tombstone = pc.and_(
        pc.is_null(sealed.column("value")),
        pc.less(sealed.column("timestamp").cast(pa.int64()), now_ms - config["delete.retention.ms"]),
    )
    return sealed.filter(pc.and_(keep, pc.invert(old_tombstone)))


def _in_ranges(offsets: pa.ChunkedArray, ranges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Which ``offsets`` fall in one of the sorted, disjoint ``[start, end)`` ``ranges``."""
    values = offsets.to_numpy()
    starts = np.fromiter((r[0] for r in ranges), dtype=np.int64, count=len(ranges))
    ends = np.fromiter((r[1] for r in ranges), dtype=np.int64, count=len(ranges))
    i = np.searchsorted(starts, values, side="right") - 1
    return np.asarray((i >= 0) & (values < ends[np.clip(i, 0, None)]))
