"""Appending records to a partition."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker.core import Broker, TopicState
from streamlab.broker.producer_state import ProducerStates
from streamlab.errors import (
    CorruptSegmentError,
    InvalidTimestampError,
    StorageError,
    StreamlabError,
    UnknownTopicError,
)
from streamlab.model.limits import RECORD_OVERHEAD, check_record_size
from streamlab.model.types import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS

if TYPE_CHECKING:  # transactions appends its markers through this module
    from streamlab.broker.transactions import TransactionCoordinator

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


def log_start_offset(broker: Broker, topic: str, partition: int) -> int:
    """The partition's first retained offset; raises if there is no such partition."""
    return broker.log(topic, partition).log_start_offset


@dataclass(frozen=True, slots=True)
class ProducerBatch:
    """A batch of an idempotent (or transactional) producer: who sent it, and its first
    and last sequence numbers (the last wraps at 2**31 - 1)."""

    producer_id: int
    epoch: int
    first_seq: int
    last_seq: int
    transactional: bool


@dataclass(frozen=True, slots=True)
class Stored:
    """Where :func:`append_from_producer` put a batch. It is not durable until every one of
    ``syncs`` has run (the log's, and for a producer's batch the producer state's): the
    caller runs them for all its appends at once, with :func:`sync_all`."""

    base_offset: int
    log_start_offset: int
    syncs: tuple[Callable[[], None], ...]


def append_from_producer(
    broker: Broker, topic: str, partition: int, rows: pa.RecordBatch, *,
    producer: ProducerBatch | None, producers: ProducerStates, transactions: TransactionCoordinator,
    wire: memoryview | None = None,
) -> Stored:  # fmt: skip
    """Append a batch a client sent (not yet durable, see :class:`Stored`). A producer's
    batch is checked against its sequence (:mod:`streamlab.broker.producer_state`) and, if
    transactional, against its transaction; a retry of a stored batch is dropped and
    answered with its original offset (its ``syncs`` still count: the original may not be
    durable yet). ``wire``: the batch as the producer wrote it, kept for Fetch once its
    rows are appended (:mod:`streamlab.broker.batch_passthrough`)."""
    log = broker.log(topic, partition)
    syncs = (log.sync,) if producer is None else (log.sync, producers.sync)
    # The log's append lock too: an embedded producer of an in-process Lab.serve appends to
    # the same log without the server's partition lock, and must not land between the
    # offsets noted below and this batch's append.
    with producers.partition(topic, partition), log.append_lock:
        if producer is None:
            base, appended = append(broker, topic, partition, rows, sync=False), True
        else:
            base, appended = _append_in_sequence(broker, topic, partition, rows, producer, producers, transactions)
        if appended and wire is not None:
            log.wire_batches.keep(base, wire)
    return Stored(base, log.log_start_offset, syncs)


def _append_in_sequence(
    broker: Broker, topic: str, partition: int, rows: pa.RecordBatch,
    producer: ProducerBatch, producers: ProducerStates, transactions: TransactionCoordinator,
) -> tuple[int, bool]:  # fmt: skip
    """The batch's base offset, and whether it was appended (False: a retry, dropped)."""
    pid, epoch, seqs = producer.producer_id, producer.epoch, (producer.first_seq, producer.last_seq)
    duplicate = producers.check(topic, partition, pid, epoch, *seqs)
    if duplicate is not None:
        logger.info("%s[%d]: dropped a retried batch of producer %d (offset %d)", topic, partition, pid, duplicate)
        return duplicate, False
    expected = broker.log(topic, partition).high_watermark
    if producer.transactional:  # fenced or not in the transaction: raises before anything is written
        transactions.before_append(topic, partition, pid, epoch, expected, rows.num_rows)
    producers.begin(topic, partition, pid, epoch, seqs, expected, rows.num_rows)
    try:
        base = append(broker, topic, partition, rows, sync=False)
    except BaseException:
        producers.abort(topic, partition, pid, expected)
        if producer.transactional:
            transactions.append_failed(topic, partition, pid, expected, rows.num_rows)
        raise
    producers.commit(topic, partition, pid, expected, stored_at=base)
    return base, True


def _check_timestamps(batch: pa.RecordBatch, topic: str, partition: int) -> None:
    # Clients check one record at a time; this is the last line for every path (embedded
    # producers, the wire server): a timestamp replay cannot represent is never stored.
    if not batch.num_rows:
        return
    column = batch.column("timestamp")
    if column.null_count:
        bounds = pc.min_max(column.cast(pa.int64()))
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
    else:  # its values as they are stored (int64 ms): cheaper than a cast and a compute call
        stored = np.frombuffer(column.buffers()[1], dtype=np.int64, count=len(column), offset=8 * column.offset)
        low, high = int(stored.min()), int(stored.max())
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
