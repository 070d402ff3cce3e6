"""The embedded producer: ``send`` one record, ``send_many`` a DataFrame.

``send`` serialises and validates in the caller's thread (bad input raises at once; that
half is :class:`~streamlab.port.producer_base.ProducerBase`, shared with ``kafka://``) and
this engine appends the record's bytes to its partition's queue, column by column (one bytearray of
keys, one of values, arrays of offsets, formats and timestamps): no object per record
but its future. A sender thread takes whole queues, turns each into an Arrow batch
without touching the records one by one, appends it and fsyncs once per partition before
resolving the queue's futures together (futures.py). Under load queues grow by
themselves, so one fsync covers many records (group commit) without any tuning.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from array import array
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from streamlab.broker import Broker
from streamlab.broker.produce import append, sync_all, sync_error
from streamlab.broker.topics import use_topic
from streamlab.client.futures import BatchOutcome, RecordFuture
from streamlab.client.transaction import ProducerTransaction
from streamlab.errors import OperationTimeoutError, ProducerFencedError, RetentionWarning
from streamlab.model.frames import FrameRows
from streamlab.model.partitioner import PARTITIONERS
from streamlab.model.schema import build_batch
from streamlab.model.serde import FMT_NULL
from streamlab.model.types import OffsetAndMetadata, RecordMetadata, TopicPartition
from streamlab.model.views import FIELDS_COLUMN
from streamlab.port.producer_base import Headers, ProducerBase, ProducerSettings, Progress, encoded_keys
from streamlab.port.schema_values import ProducerFormats
from streamlab.port.schemas import SchemaRegistryPort
from streamlab.storage.base import PartitionLog

if TYPE_CHECKING:
    from streamlab import api

# A queue's keys or values past this many bytes start a new queue for the partition, so
# the int32 offsets of Arrow's binary type never overflow.
_MAX_QUEUE_BYTES = 1 << 30


class _Queue:
    """Records queued for one partition since the sender last took them, as columns."""

    __slots__ = ("headers", "key_ends", "key_formats", "keys", "outcome", "timestamps", "value_ends",
                 "value_formats", "values")  # fmt: skip

    def __init__(self, topic: str, partition: int, condition: threading.Condition) -> None:
        self.outcome = BatchOutcome(topic, partition, condition)
        self.timestamps = self.outcome.timestamps
        self.keys, self.key_ends, self.key_formats = bytearray(), array("i", [0]), array("b")
        self.values, self.value_ends, self.value_formats = bytearray(), array("i", [0]), array("b")
        self.headers: dict[int, list[tuple[str, bytes]]] | None = None

    def to_batch(self) -> pa.RecordBatch:
        n = len(self.timestamps)
        headers = None
        if self.headers is not None:
            headers = [self.headers.get(i) for i in range(n)]
        return build_batch(
            base_offset=0,
            timestamps=np.frombuffer(self.timestamps, dtype=np.int64),
            keys=_binary(n, self.keys, self.key_ends, self.key_formats),
            key_formats=np.frombuffer(self.key_formats, dtype=np.int8),
            values=_binary(n, self.values, self.value_ends, self.value_formats),
            value_formats=np.frombuffer(self.value_formats, dtype=np.int8),
            headers=headers,
        )


def _binary(n: int, data: bytearray, ends: array[int], formats: array[int]) -> pa.Array:
    """A binary array straight from the queue's buffers (null where the format says so)."""
    nulls = np.frombuffer(formats, dtype=np.int8) == FMT_NULL
    null_count = int(nulls.sum())
    validity = pa.py_buffer(np.packbits(~nulls, bitorder="little")) if null_count else None
    return pa.Array.from_buffers(
        pa.binary(), n, [validity, pa.py_buffer(ends), pa.py_buffer(data)], null_count=null_count
    )


class Producer(ProducerBase):
    """Sends records to an embedded broker. Use as a context manager, or call :meth:`close`.

    ``acks="all"`` (default) acknowledges a record once it is fsynced; ``acks=1`` once it
    is written to the operating system (it survives a killed process, not a power cut);
    ``acks=0`` is treated like 1. ``linger_ms`` is how long the sender waits for more
    records before writing; ``batch_size`` is how many queued records wake it early.
    """

    def __init__(self, broker: Broker, settings: ProducerSettings) -> None:
        super().__init__(settings, formats=ProducerFormats(lambda: _schema_store(broker)),
                         partitioner=PARTITIONERS[settings.partitioner]())  # fmt: skip
        self._broker = broker
        self._sync = settings.durable
        self._linger = settings.linger_ms / 1000
        self._batch_size = max(int(settings.batch_size), 1)
        self._lock = threading.Lock()  # guards the queues; send() takes it once per record
        self._wake = threading.Condition(self._lock)  # the sender waits on it for records
        self._idle = threading.Condition(self._lock)  # flush() waits on it for the sender
        self._queues: dict[tuple[str, int], _Queue] = {}
        self._full: list[_Queue] = []  # queues that hit _MAX_QUEUE_BYTES, oldest first
        self._queued = 0
        self._in_flight = 0
        self._done = threading.Condition()  # shared by this producer's futures (futures.py)
        # Transactions (client/transaction.py): None for a plain producer.
        self._txn = (
            None
            if settings.transactional_id is None
            else ProducerTransaction(broker, settings.transactional_id, timeout_ms=settings.transaction_timeout_ms)
        )
        self._sender = threading.Thread(target=self._run, name=f"{self.client_id}-sender", daemon=True)
        self._sender.start()

    # sending ----------------------------------------------------------------------------
    def _topic_limits(self, topic: str) -> tuple[int, int]:
        broker = self._broker
        state = broker.topics.get(topic) if type(topic) is str else None
        if state is None or broker.closed:
            state = use_topic(broker, topic)  # created if auto.create.topics.enable, else the right error
        return state.config["max.message.bytes"], len(state.logs)

    def _check_in_transaction(self, what: str) -> None:
        if self._txn is not None:
            self._txn.check_send(what)

    def _enqueue(
        self, topic: str, partition: int, key: bytes | None, key_format: int, value: bytes | None,
        value_format: int, timestamp: int, headers: Headers | None,
    ) -> Future[RecordMetadata]:  # fmt: skip
        with self._lock:
            q = self._queues.get((topic, partition))
            if q is None:
                q = self._queues[(topic, partition)] = _Queue(topic, partition, self._done)
            index = len(q.timestamps)
            q.timestamps.append(timestamp)
            if key is not None:
                q.keys += key
            q.key_ends.append(len(q.keys))
            q.key_formats.append(key_format)
            if value is not None:
                q.values += value
            q.value_ends.append(len(q.values))
            q.value_formats.append(value_format)
            if headers is not None:
                if q.headers is None:
                    q.headers = {}
                q.headers[index] = headers
            if len(q.values) >= _MAX_QUEUE_BYTES or len(q.keys) >= _MAX_QUEUE_BYTES:
                self._full.append(self._queues.pop((topic, partition)))
            self._queued += 1
            if self._queued == 1 or self._queued == self._batch_size:
                self._wake.notify()
            return RecordFuture(q.outcome, index)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queued and not self._closed:
                    self._wake.wait()
                if not self._queued and self._closed:
                    return
                if self._queued < self._batch_size and not self._closed:
                    self._wake.wait(self._linger)  # linger: let a batch form
                queues = [*self._full, *self._queues.values()]
                taken = self._queued
                self._full, self._queues, self._queued = [], {}, 0
                self._in_flight += taken
            try:
                self._write(queues)
            finally:
                with self._lock:
                    self._in_flight -= taken
                    self._idle.notify_all()

    def _write(self, queues: list[_Queue]) -> None:
        # Append every partition's queue, then fsync the partitions in parallel (one
        # shared round each) before resolving any future of theirs.
        stored: list[tuple[BatchOutcome, int, PartitionLog]] = []
        for q in queues:
            outcome = q.outcome
            try:
                log = self._broker.log(outcome.topic, outcome.partition)
                base = self._append(outcome.topic, outcome.partition, q.to_batch(), sync=False)
            except BaseException as exc:  # every waiter must hear about the failure
                outcome.resolve(None, exc)
                continue
            stored.append((outcome, base, log))
        logs = list({id(log): log for _, _, log in stored}.values()) if self._sync else []
        failed = {id(log): exc for log, exc in zip(logs, sync_all([log.sync for log in logs]), strict=True) if exc}
        for outcome, base, log in stored:
            error = failed.get(id(log))
            if error is not None:
                error = sync_error(self._broker, outcome.topic, error)
            outcome.resolve(None if error else base, error)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is stored (raises on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._wake.notify()  # no need to linger: someone is waiting
            while self._queued or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise OperationTimeoutError(
                        f"flush timed out with {self._queued + self._in_flight} records still queued"
                    )
                self._idle.wait(left)

    # bulk -------------------------------------------------------------------------------
    def _send_rows(
        self, topic: str, rows: FrameRows, keys: pd.Series | None, partition: int | None, partitions: int,
        chunk_size: int, bar: Progress,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        ts = rows.timestamps
        key_values, key_formats, parts = self._keys_and_partitions(keys, len(ts), partitions, partition)
        _warn_if_past_retention(topic, ts, self._broker.topic(topic).config["retention.ms"])
        offsets = np.zeros(len(ts), dtype=np.int64)
        for p in np.unique(parts):
            placed = np.flatnonzero(parts == p)
            for start in range(0, len(placed), chunk_size):
                chunk = placed[start : start + chunk_size]
                idx = pa.array(chunk)
                batch = build_batch(
                    base_offset=0,
                    timestamps=pa.array(ts[chunk]),
                    keys=key_values.take(idx),
                    key_formats=key_formats.take(idx),
                    values=rows.values.take(idx),
                    value_formats=pa.array(np.full(len(chunk), rows.value_format, dtype=np.int8)),
                )
                if rows.fields is not None:  # kept typed to the sealed segment (model.frames)
                    batch = batch.append_column(FIELDS_COLUMN, rows.fields.take(idx))
                last = start + chunk_size >= len(placed)
                base = self._append(topic, int(p), batch, sync=self._sync and last)
                offsets[chunk] = np.arange(base, base + len(chunk))
                bar.update(len(chunk))
        return parts, offsets

    def _keys_and_partitions(
        self, column: pd.Series | None, n: int, partitions: int, partition: int | None
    ) -> tuple[pa.Array, pa.Array, np.ndarray]:
        """Each row's key (bytes and format) and partition."""
        place = self._partitioner
        assert place is not None  # the embedded producer places every record itself
        if column is None:
            keys, formats = pa.nulls(n, pa.binary()), pa.array(np.zeros(n, dtype=np.int8))
            keyless = np.ones(n, dtype=bool)
            parts = np.zeros(n, dtype=np.int64)
        else:
            index, encoded = encoded_keys(column)
            at = pa.array(index)
            keys = pa.array([b for b, _ in encoded], pa.binary()).take(at)
            formats = pa.array([f for _, f in encoded], pa.int8()).take(at)
            keyless = index == len(encoded) - 1
            if partition is None:
                by_key = [place(b, partitions) if b is not None else 0 for b, _ in encoded]
                parts = np.array(by_key, dtype=np.int64)[index]
        if partition is not None:
            return keys, formats, np.full(n, partition, dtype=np.int64)
        if keyless.any():  # rows without a key are spread like unkeyed sends
            parts[keyless] = [place(None, partitions) for _ in range(int(keyless.sum()))]
        return keys, formats, parts

    def _append(self, topic: str, partition: int, batch: pa.RecordBatch, *, sync: bool) -> int:
        if self._txn is None:
            return append(self._broker, topic, partition, batch, sync=sync)
        return self._txn.append(topic, partition, batch, sync=sync)

    # transactions -----------------------------------------------------------------------
    def _transaction(self) -> ProducerTransaction:
        assert self._txn is not None  # ProducerBase checked that this producer is transactional
        return self._txn

    def _init_transactions(self, timeout: float) -> None:
        self._transaction().init()

    def _begin_transaction(self) -> None:
        self._transaction().begin()

    def _send_offsets(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], group: str, group_metadata: str | api.Consumer,
        timeout: float,
    ) -> None:  # fmt: skip
        self._transaction().send_offsets(offsets, group)

    def _end_transaction(self, *, commit: bool, timeout: float) -> None:
        txn = self._transaction()
        txn.check_send("commit_transaction" if commit else "abort_transaction")
        self.flush(timeout)
        txn.end(commit=commit)

    # lifecycle --------------------------------------------------------------------------
    def _drain(self, timeout: float | None) -> None:
        self.flush(timeout)
        if self._txn is not None and self._txn.state == "in_transaction" and not self._broker.closed:
            with contextlib.suppress(ProducerFencedError):  # then the newer producer aborted it
                self._txn.end(commit=False)

    def _stop(self, timeout: float | None) -> None:
        with self._lock:
            self._wake.notify_all()
        self._sender.join(timeout)


__all__ = ["Producer"]


def _schema_store(broker: Broker) -> SchemaRegistryPort:
    from streamlab.broker.schema_registry import schema_store  # its codecs load only when asked for

    return schema_store(broker)


def _warn_if_past_retention(topic: str, timestamps: np.ndarray, retention_ms: int) -> None:
    """Historical data (a replayed day, the sample clickstream) in a topic with the default
    7-day retention would vanish at the next seal or reopen: say so while it can be fixed."""
    if retention_ms < 0 or not len(timestamps):
        return
    newest = int(timestamps.max())
    if newest < time.time() * 1000 - retention_ms:
        warnings.warn(
            RetentionWarning(
                f"every row sent to {topic!r} is older than its retention.ms ({retention_ms / 86_400_000:g} days): "
                "the records are stored, but retention deletes them when their segment is sealed or the broker "
                f"reopens. For historical data, create the topic with config={{'retention.ms': -1}} or alter it "
                f"with lab.alter_topic_config({topic!r}, {{'retention.ms': -1}})."
            ),
            stacklevel=4,
        )
