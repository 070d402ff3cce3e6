"""Appending records to a partition."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker, TopicState
from streamlab.errors import (
    CorruptSegmentError,
    InvalidTimestampError,
    StorageError,
    StreamlabError,
    UnknownTopicError,
)
from streamlab.model.limits import RECORD_OVERHEAD, check_record_size
from streamlab.model.types import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS

logger = logging.getLogger("streamlab.broker")


# fsyncs of different files run in parallel (os.fsync releases the GIL; the disk and the
# file system's journal commit them together far better than one after another).
_SYNC_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="streamlab-fsync")


def append(broker: Broker, topic: str, partition: int, batch: pa.RecordBatch, *, sync: bool) -> int:
    """Store ``batch`` in one partition; returns the base offset. All or nothing."""
    state = broker.topic(topic)
    log = broker.log(topic, partition)
    limit = state.config["max.message.bytes"]
    if batch.get_total_buffer_size() + RECORD_OVERHEAD <= limit:
        largest = 0  # the whole batch is smaller than the limit: so is every record
    else:
        sizes = pc.add(
            pc.fill_null(pc.binary_length(batch.column("key")), 0),
            pc.fill_null(pc.binary_length(batch.column("value")), 0),
        )
        largest = pc.max(sizes).as_py() or 0
    check_record_size(largest + RECORD_OVERHEAD, limit, topic=topic, partition=partition)
    _check_timestamps(batch, topic, partition)
    sealed = len(log.sealed_segments())
    try:
        base = log.append(batch, sync=sync, now_ms=broker.clock.time_ms())
    except (OSError, StreamlabError) as exc:
        _raise_if_deleted(broker, topic, partition, state, exc)
        raise
    if broker.topics.get(topic) is not state:
        # delete_topic took the topic out before closing its logs: this batch went to a log
        # being closed and deleted, so it is not stored (and must not be acknowledged).
        _raise_if_deleted(broker, topic, partition, state, None)
    broker.notify_data()
    if len(log.sealed_segments()) != sealed:
        # A segment was just sealed: the moment Kafka's log cleaner would look again. The
        # batch is stored whatever the cleaner does: a failure here (disk full during a
        # compaction) must not report the append as failed, or a retry would store it twice.
        config, now_ms = state.config, int(time.time() * 1000)
        from streamlab.broker.transaction_registry import compaction_view  # a cycle: it appends markers

        aborted, stable = compaction_view(broker, topic, partition)
        try:
            log.apply_retention(config, now_ms)
            log.compact(config, now_ms, aborted=aborted, stable_offset=stable)
        except (StorageError, CorruptSegmentError) as exc:
            logger.warning("%s[%d]: retention and compaction skipped after a seal: %s", topic, partition, exc)
    return base


def _check_timestamps(batch: pa.RecordBatch, topic: str, partition: int) -> None:
    # Clients check one record at a time; this is the last line for every path (embedded
    # producers, the wire server): a timestamp replay cannot represent is never stored.
    if not batch.num_rows:
        return
    bounds = pc.min_max(batch.column("timestamp").cast(pa.int64()))
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low < MIN_TIMESTAMP_MS or high > MAX_TIMESTAMP_MS:
        raise InvalidTimestampError(
            f"a record timestamp ({low if low < MIN_TIMESTAMP_MS else high} ms) is outside "
            f"{MIN_TIMESTAMP_MS}..{MAX_TIMESTAMP_MS} (1970-01-01 to 9999-12-31 UTC)",
            topic=topic,
            partition=partition,
        )


def _raise_if_deleted(
    broker: Broker, topic: str, partition: int, state: TopicState, cause: BaseException | None
) -> None:
    """An append that failed (or landed) while ``topic`` was being deleted reports that,
    not the closed file's error (EBADF) underneath."""
    # Never broker.lock here: a transactional append calls this holding the log's lock, and
    # retention and delete_topic take broker.lock before a log's (a deadlock). None is
    # needed: delete_topic takes the topic out of the table before it closes a log.
    if broker.topics.get(topic) is state:
        return
    raise UnknownTopicError(
        f"topic {topic!r} was deleted while records were being sent to it; they were not stored",
        topic=topic,
        partition=partition,
    ) from cause


def sync_error(broker: Broker, topic: str, error: BaseException) -> BaseException:
    """What a failed sync of ``topic``'s log tells the sender: that the topic was deleted,
    if it was (its files were closed under the sync), else ``error``."""
    with broker.lock:
        if topic in broker.topics:
            return error
    gone = UnknownTopicError(f"topic {topic!r} was deleted while records were being sent to it", topic=topic)
    gone.__cause__ = error
    return gone


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
