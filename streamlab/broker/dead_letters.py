"""Dead letters of share groups: records archived as rejected, or past the delivery count
limit, copied to the group's dead-letter topic with headers saying where they came from.

Also here: :func:`read_offsets`, the read by offset that copying needs and that a share
fetch uses to hand records out. Separate from :mod:`.share_group` because this is about
record contents and the log, where the group is about who holds which offset.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker
from streamlab.broker.produce import append
from streamlab.broker.topics import create_topic
from streamlab.groups.share import DeadLetter, now_ms
from streamlab.model.partitioner import partition_for_key
from streamlab.model.schema import build_batch
from streamlab.storage.base import PartitionLog

__all__ = ["DLQ_HEADER", "read_offsets", "write_dead_letters"]

DLQ_HEADER = "streamlab.dlq"  # header names: streamlab.dlq.reason, .group, .source.topic, ...


def write_dead_letters(broker: Broker, group_id: str, topic: str, dead: list[DeadLetter]) -> None:
    """Copy the records of ``dead`` to ``topic`` (created if it was deleted meanwhile)."""
    if topic not in broker.topics:  # deleted since the group named it
        create_topic(broker, topic, 1)
    partitions = broker.topic(topic).partitions
    now = now_ms()
    for letter in dead:
        if letter.topic not in broker.topics:
            continue
        table = read_offsets(broker.log(letter.topic, letter.partition), [letter.offset])
        if not table.num_rows:
            continue  # deleted by retention or compaction meanwhile: nothing to copy
        row = table.to_pylist()[0]
        source_ts = int(table.column("timestamp").cast(pa.int64())[0].as_py())
        headers = [(h["key"], h["value"]) for h in row["headers"] or []] + [
            (f"{DLQ_HEADER}.{name}", str(value).encode())
            for name, value in (
                ("reason", letter.reason), ("group", group_id), ("source.topic", letter.topic),
                ("source.partition", letter.partition), ("source.offset", letter.offset),
                ("source.timestamp", source_ts), ("delivery.count", letter.delivery_count),
            )
        ]  # fmt: skip
        key = row["key"]
        partition = partition_for_key(key, partitions) if key is not None else letter.partition % partitions
        batch = build_batch(
            base_offset=0, timestamps=[now], keys=[key], key_formats=[row["key_format"]], values=[row["value"]],
            value_formats=[row["value_format"]], headers=[headers],
        )  # fmt: skip
        append(broker, topic, partition, batch, sync=True)


def read_offsets(log: PartitionLog, offsets: Sequence[int]) -> pa.Table:
    """The records at ``offsets`` (sorted) that the log still holds."""
    pieces = []
    for start, stop in _runs(sorted(offsets)):
        table = log.read(start, stop - start)
        column = table.column("offset")
        mask = pc.and_(pc.greater_equal(column, start), pc.less(column, stop))
        pieces.append(table.filter(mask))
    return pa.concat_tables(pieces) if pieces else log.read(0, 0)


def _runs(offsets: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and runs[-1][1] == offset:
            runs[-1] = (runs[-1][0], offset + 1)
        else:
            runs.append((offset, offset + 1))
    return runs
