"""Reading records from a partition."""

from __future__ import annotations

import pyarrow as pa

from streamlab.broker.core import Broker
from streamlab.errors import OffsetOutOfRangeError


def fetch(broker: Broker, topic: str, partition: int, offset: int, max_records: int) -> pa.Table:
    """Records from ``offset`` on; raises if ``offset`` lies outside the retained log."""
    log = broker.log(topic, partition)
    start, end = log.log_start_offset, log.high_watermark
    if offset < start or offset > end:
        raise OffsetOutOfRangeError(
            f"offset {offset} is outside {topic}[{partition}]'s retained range {start}..{end}",
            topic=topic,
            partition=partition,
            offset=offset,
        )
    if offset == end:
        return log.read(offset, 0)
    return log.read(offset, max_records)
