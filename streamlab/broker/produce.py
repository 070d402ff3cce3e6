"""Appending records to a partition."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker
from streamlab.errors import RecordTooLargeError

# Per-record overhead Kafka counts on top of key and value bytes (record batch v2 framing).
RECORD_OVERHEAD = 70


def append(broker: Broker, topic: str, partition: int, batch: pa.RecordBatch, *, sync: bool) -> int:
    """Store ``batch`` in one partition; returns the base offset. All or nothing."""
    log = broker.log(topic, partition)
    limit = broker.topics[topic].config["max.message.bytes"]
    sizes = pc.add(
        pc.fill_null(pc.binary_length(batch.column("key")), 0),
        pc.fill_null(pc.binary_length(batch.column("value")), 0),
    )
    largest = pc.max(sizes).as_py() or 0
    if largest + RECORD_OVERHEAD > limit:
        raise RecordTooLargeError(
            f"a record of {largest + RECORD_OVERHEAD} bytes exceeds max.message.bytes={limit} of topic {topic!r}; "
            "split the value or raise the topic's max.message.bytes",
            topic=topic,
            partition=partition,
        )
    sealed = len(log.sealed_segments())
    base = log.append(batch, sync=sync)
    broker.notify_data()
    if len(log.sealed_segments()) != sealed:
        # A segment was just sealed: the moment Kafka's log cleaner would look again.
        config, now_ms = broker.topics[topic].config, int(time.time() * 1000)
        log.apply_retention(config, now_ms)
        log.compact(config, now_ms)
    return base
