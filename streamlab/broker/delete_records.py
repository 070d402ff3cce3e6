"""Deleting records: moving a partition's log start offset forward."""

from __future__ import annotations

from typing import Final

from streamlab.broker.core import Broker

HIGH_WATERMARK: Final = -1  # "delete everything written so far"


def delete_records(broker: Broker, topic: str, partition: int, offset: int) -> int:
    """Make ``offset`` (HIGH_WATERMARK: the high watermark) the partition's log start,
    durably; returns the new log start. Records below it are never served again and
    segments wholly below it are removed. Raises
    :class:`~streamlab.errors.OffsetOutOfRangeError` past the high watermark and the
    broker's errors for an unknown topic or partition."""
    log = broker.log(topic, partition)
    start = log.delete_records(log.high_watermark if offset == HIGH_WATERMARK else offset)
    log.wire_batches.drop_below(start)
    return start
