"""Reading records from a partition."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker
from streamlab.errors import OffsetOutOfRangeError
from streamlab.model.serde import FMT_CONTROL


def fetch(broker: Broker, topic: str, partition: int, offset: int, max_records: int) -> tuple[pa.Table, int]:
    """Records from ``offset`` on, and the offset to read from next; raises if ``offset``
    lies outside the retained log. Transaction markers (written by `streamlab serve`'s
    transaction coordinator) take offsets but are never records: they are left out, and
    the next offset is past them."""
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
        return log.read(offset, 0), offset
    table = log.read(offset, max_records)
    if not table.num_rows:
        return table, offset
    next_offset = int(table.column("offset")[-1].as_py()) + 1
    markers = pc.equal(table.column("key_format"), FMT_CONTROL)
    if pc.any(markers).as_py():
        table = table.filter(pc.invert(markers))
    return table, next_offset
