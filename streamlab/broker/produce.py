"""Appending records to a partition."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker
from streamlab.errors import RecordTooLargeError

# Per-record overhead Kafka counts on top of key and value bytes (record batch v2 framing).
RECORD_OVERHEAD = 70

# fsyncs of different files run in parallel (os.fsync releases the GIL; the disk and the
# file system's journal commit them together far better than one after another).
_SYNC_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="streamlab-fsync")


def append(broker: Broker, topic: str, partition: int, batch: pa.RecordBatch, *, sync: bool) -> int:
    """Store ``batch`` in one partition; returns the base offset. All or nothing."""
    log = broker.log(topic, partition)
    limit = broker.topics[topic].config["max.message.bytes"]
    if batch.get_total_buffer_size() + RECORD_OVERHEAD <= limit:
        largest = 0  # the whole batch is smaller than the limit: so is every record
    else:
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


def sync_all(syncs: Sequence[Callable[[], None]]) -> list[BaseException | None]:
    """Run every ``sync`` at once (the first in this thread); each one's exception or None."""
    if not syncs:
        return []
    futures = [_SYNC_POOL.submit(sync) for sync in syncs[1:]]
    first: BaseException | None = None
    try:
        syncs[0]()
    except BaseException as exc:
        first = exc
    return [first, *(f.exception() for f in futures)]
