"""Offsets by position and by time, as Kafka's ListOffsets answers them.

For a timestamp, the answer is the earliest offset whose record has a timestamp at least
that large, with that record's timestamp; if there is none the offset is -1, as in Kafka
(clients read it as "no such record"). :data:`MAX_TIMESTAMP` asks for the record with the
largest timestamp. Read-committed, "latest" is the last stable offset: the first offset of
the oldest transaction still open on the partition.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker
from streamlab.broker.transactions import TransactionCoordinator
from streamlab.storage.base import PartitionLog

LATEST: Final = -1
EARLIEST: Final = -2
MAX_TIMESTAMP: Final = -3


def _record_timestamp(log: PartitionLog, offset: int) -> int:
    table = log.read(offset, 1)
    return int(table.column("timestamp").cast(pa.int64())[0].as_py()) if table.num_rows else -1


def _max_timestamp(log: PartitionLog) -> tuple[int, int]:
    candidates = [s.max_timestamp for s in log.sealed_segments()]
    active = log.active_table()
    if active.num_rows:
        candidates.append(pc.max(active.column("timestamp").cast(pa.int64())).as_py())
    if not candidates:
        return -1, -1
    newest = max(candidates)
    offset = log.offset_for_timestamp(newest)
    return (-1, -1) if offset is None else (offset, newest)


def list_offset(
    broker: Broker, transactions: TransactionCoordinator, topic: str, partition: int, timestamp: int, *,
    committed: bool = False,
) -> tuple[int, int]:  # fmt: skip
    """(offset, timestamp) for ``timestamp`` (or LATEST, EARLIEST, MAX_TIMESTAMP); the
    timestamp is -1 for the positions. Raises for an unknown topic or partition. Looking up
    by time may read Parquet segments."""
    log = broker.log(topic, partition)
    if timestamp == LATEST:
        if committed:
            return transactions.last_stable_offset(topic, partition, log.high_watermark), -1
        return log.high_watermark, -1
    if timestamp == EARLIEST:
        return log.log_start_offset, -1
    if timestamp == MAX_TIMESTAMP:
        return _max_timestamp(log)
    offset = log.offset_for_timestamp(timestamp)
    if offset is None or offset >= log.high_watermark:
        return -1, -1
    offset = max(offset, log.log_start_offset)
    return offset, _record_timestamp(log, offset)
