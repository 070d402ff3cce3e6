"""The producer: ``send`` one record, ``send_many`` a DataFrame.

``send`` serialises and validates in the caller's thread (bad input raises at once) and
appends the record's bytes to its partition's queue, column by column (one bytearray of
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
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from streamlab.broker import Broker
from streamlab.broker.produce import append, sync_all, sync_error
from streamlab.broker.topics import use_topic
from streamlab.client.futures import BatchOutcome, RecordFuture
from streamlab.client.transaction import DEFAULT_TIMEOUT_MS, ProducerTransaction
from streamlab.errors import (
    ClosedError,
    ConfigError,
    NoGroupError,
    OperationTimeoutError,
    ProducerFencedError,
    RetentionWarning,
    UnknownPartitionError,
)
from streamlab.model.limits import RECORD_OVERHEAD, check_record_size, record_size
from streamlab.model.partitioner import PARTITIONERS, partition_for_key
from streamlab.model.schema import build_batch
from streamlab.model.serde import _OPTIONS as _JSON_OPTIONS
from streamlab.model.serde import FMT_JSON, FMT_NULL, FMT_STR, encode, encode_headers, encode_str
from streamlab.model.timeparse import record_timestamp
from streamlab.model.types import OffsetAndMetadata, RecordMetadata, TopicPartition
from streamlab.model.views import FIELDS_COLUMN
from streamlab.port.schema_values import ProducerFormats, SchemaArg
from streamlab.port.schemas import SchemaRegistryPort
from streamlab.storage.base import PartitionLog

if TYPE_CHECKING:
    from streamlab import api

Acks = Literal["all", -1, 0, 1]

# A queue's keys or values past this many bytes start a new queue for the partition, so
# the int32 offsets of Arrow's binary type never overflow.
_MAX_QUEUE_BYTES = 1 << 30
_dumps = orjson.dumps


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


class Producer:
    """Sends records to an embedded broker. Use as a context manager, or call :meth:`close`.

    ``acks="all"`` (default) acknowledges a record once it is fsynced; ``acks=1`` once it
    is written to the operating system (it survives a killed process, not a power cut);
    ``acks=0`` is treated like 1. ``linger_ms`` is how long the sender waits for more
    records before writing; ``batch_size`` is how many queued records wake it early.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        acks: Acks = "all",
        linger_ms: float = 5,
        batch_size: int = 10_000,
        partitioner: str = "murmur2",
        client_id: str = "streamlab-producer",
        transactional_id: str | None = None,
        transaction_timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        if acks not in ("all", -1, 0, 1):
            raise ConfigError(f"acks must be 'all', -1, 0 or 1, got {acks!r}")
        if partitioner not in PARTITIONERS:
            raise ConfigError(f"partitioner must be one of {sorted(PARTITIONERS)}, got {partitioner!r}")
        self._broker = broker
        self._sync = acks in ("all", -1)
        self._linger = linger_ms / 1000
        self._batch_size = max(int(batch_size), 1)
        self._partitioner = PARTITIONERS[partitioner]()
        self.client_id = client_id
        self._lock = threading.Lock()  # guards the queues; send() takes it once per record
        self._wake = threading.Condition(self._lock)  # the sender waits on it for records
        self._idle = threading.Condition(self._lock)  # flush() waits on it for the sender
        self._queues: dict[tuple[str, int], _Queue] = {}
        self._full: list[_Queue] = []  # queues that hit _MAX_QUEUE_BYTES, oldest first
        self._queued = 0
        self._in_flight = 0
        self._done = threading.Condition()  # shared by this producer's futures (futures.py)
        self._closed = False
        self._formats = ProducerFormats(lambda: _schema_store(broker))  # key_format/value_format
        # Transactions (client/transaction.py): None for a plain producer.
        self._txn = (
            None
            if transactional_id is None
            else ProducerTransaction(broker, transactional_id, timeout_ms=transaction_timeout_ms)
        )
        self._sender = threading.Thread(target=self._run, name=f"{client_id}-sender", daemon=True)
        self._sender.start()

    # sending ----------------------------------------------------------------------------
    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Mapping[str, str | bytes] | list[tuple[str, str | bytes]] | None = None,
        timestamp: Any = None,
        partition: int | None = None,
        *,
        key_format: str | None = None,
        key_schema: SchemaArg = None,
        value_format: str | None = None,
        value_schema: SchemaArg = None,
    ) -> Future[RecordMetadata]:
        """Queue one record; the future resolves to its :class:`RecordMetadata` once stored.

        ``timestamp`` (default: now) is a datetime, ISO string or int milliseconds from
        1970-01-01 to 9999-12-31 UTC, what replay can represent; others raise
        :class:`~streamlab.errors.InvalidTimestampError` (Kafka's INVALID_TIMESTAMP).

        ``value_format="avro"`` or ``"jsonschema"`` writes the value in Confluent's wire
        format under ``value_schema`` (its text or a dict; default: the latest version of
        subject ``<topic>-value``), registered in the directory's Schema Registry, as
        confluent-kafka's serializers do; ``key_format``/``key_schema`` likewise for the key
        (see :mod:`streamlab.port.schema_values`)."""
        # This is the per-record hot path: the common cases (a dict value, a str key) are
        # inlined, everything else goes through serde.encode.
        broker = self._broker
        state = broker.topics.get(topic) if type(topic) is str else None
        if state is None or broker.closed or self._closed:
            if self._closed:
                raise ClosedError("this producer is closed; create a new one with lab.producer()")
            state = use_topic(broker, topic)  # created if auto.create.topics.enable, else the right error
        if self._txn is not None:
            self._txn.check_send()
        if key_format is not None or value_format is not None:
            key, value = self._formats.record(topic, key, value, key_format=key_format, key_schema=key_schema,
                                              value_format=value_format, value_schema=value_schema)  # fmt: skip
        if type(value) is dict:
            try:
                value_bytes: bytes | None = _dumps(value, option=_JSON_OPTIONS)
                value_fmt = FMT_JSON
            except (TypeError, ValueError):
                value_bytes, value_fmt = encode(value)  # raises SerializationError
        else:
            value_bytes, value_fmt = encode(value)
        if type(key) is str:
            key_bytes: bytes | None = encode_str(key, what="key")
            key_fmt = FMT_STR
        else:
            key_bytes, key_fmt = encode(key, what="key")
        check_record_size(record_size(key_bytes, value_bytes), state.config["max.message.bytes"], topic=topic)
        partitions = len(state.logs)
        if partition is None:
            partition = self._partitioner(key_bytes, partitions)
        elif isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < partitions:
            raise UnknownPartitionError(
                f"topic {topic!r} has partitions 0..{partitions - 1}; there is no partition {partition!r}",
                topic=topic,
            )
        ts = int(time.time() * 1000) if timestamp is None else record_timestamp(timestamp)
        header_list = encode_headers(headers) if headers else None
        with self._lock:
            q = self._queues.get((topic, partition))
            if q is None:
                q = self._queues[(topic, partition)] = _Queue(topic, partition, self._done)
            index = len(q.timestamps)
            q.timestamps.append(ts)
            if key_bytes is not None:
                q.keys += key_bytes
            q.key_ends.append(len(q.keys))
            q.key_formats.append(key_fmt)
            if value_bytes is not None:
                q.values += value_bytes
            q.value_ends.append(len(q.values))
            q.value_formats.append(value_fmt)
            if header_list is not None:
                if q.headers is None:
                    q.headers = {}
                q.headers[index] = header_list
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
    def send_many(
        self,
        topic: str,
        df: pd.DataFrame,
        *,
        key: str | None = None,
        timestamp: str | None = None,
        partition: int | None = None,
        progress: bool | None = None,
        chunk_size: int = 100_000,
        key_format: str | None = None,
        key_schema: SchemaArg = None,
        value_format: str | None = None,
        value_schema: SchemaArg = None,
    ) -> pd.DataFrame:
        """One record per row of ``df``: ``key`` and ``timestamp`` name columns, the other
        columns become the JSON-object value (a null value when none is left).

        ``value_format="avro"`` or ``"jsonschema"``: the other columns become one record in
        Confluent's wire format instead, under ``value_schema`` or, without one, a schema
        derived from the dtypes (:mod:`streamlab.model.schemas.derive` says how), registered
        under subject ``<topic>-value``; ``key_format``/``key_schema`` likewise for the key
        column (``<topic>-key``).

        Times, as for ``send``, from 1970 to 9999: datetimes (naive ones taken as UTC), ISO
        strings, or integers of epoch **milliseconds**, Kafka's unit. Other units are
        converted first: ``df["ts"] = pd.to_datetime(df["ts"], unit="s")`` (or "us", "ns").
        Dtypes come back from ``replay``: ``Int64`` with its NAs, bool, float, str,
        datetimes as ``datetime64[us, UTC]``, categoricals as their values; a column JSON
        cannot hold (Python objects, bytes, timedelta) raises :class:`SerializationError`
        naming it (see :mod:`streamlab.model.frames`). Returns, aligned with ``df``'s index, the
        ``partition`` and ``offset`` each row was stored at. Durable (per ``acks``) when it
        returns; validates every row before writing any."""
        if self._closed:
            raise ClosedError("this producer is closed; create a new one with lab.producer()")
        state = use_topic(self._broker, topic)  # created if auto.create.topics.enable
        if self._txn is not None:
            self._txn.check_send()
        n = len(df)
        frame = self._formats.frame_rows(topic, df, key=key, timestamp=timestamp, value_format=value_format,
                                         value_schema=value_schema)  # fmt: skip
        values, ts = frame.values, frame.timestamps
        key_column = None if key is None else self._formats.key_column(topic, df[key], key_format, key_schema)
        keys, key_formats, parts = self._keys_and_partitions(key_column, n, state.partitions)
        if partition is not None:
            self._broker.log(topic, partition)
            parts = np.full(n, partition, dtype=np.int64)
        check_record_size(frame.largest + RECORD_OVERHEAD, state.config["max.message.bytes"], topic=topic, what="a row")
        _warn_if_past_retention(topic, ts, state.config["retention.ms"])
        offsets = np.zeros(n, dtype=np.int64)
        show = progress if progress is not None else n >= 200_000
        from tqdm.auto import tqdm

        with tqdm(total=n, disable=not show, desc=f"send_many → {topic}", unit="rec") as bar:
            for p in np.unique(parts):
                rows = np.flatnonzero(parts == p)
                for start in range(0, len(rows), chunk_size):
                    chunk = rows[start : start + chunk_size]
                    idx = pa.array(chunk)
                    batch = build_batch(
                        base_offset=0,
                        timestamps=pa.array(ts[chunk]),
                        keys=keys.take(idx),
                        key_formats=key_formats.take(idx),
                        values=values.take(idx),
                        value_formats=pa.array(np.full(len(chunk), frame.value_format, dtype=np.int8)),
                    )
                    if frame.fields is not None:  # kept typed to the sealed segment (model.frames)
                        batch = batch.append_column(FIELDS_COLUMN, frame.fields.take(idx))
                    last = start + chunk_size >= len(rows)
                    base = self._append(topic, int(p), batch, sync=self._sync and last)
                    offsets[chunk] = np.arange(base, base + len(chunk))
                    bar.update(len(chunk))
        return pd.DataFrame({"partition": parts.astype(np.int32), "offset": offsets}, index=df.index)

    def _keys_and_partitions(
        self, column: pd.Series | None, n: int, partitions: int
    ) -> tuple[pa.Array, pa.Array, np.ndarray]:
        if column is None:
            parts = np.array([self._partitioner(None, partitions) for _ in range(n)], dtype=np.int64)
            return pa.nulls(n, pa.binary()), pa.array(np.zeros(n, dtype=np.int8)), parts
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        encoded = [encode(None if pd.isna(u) else u, what="key") for u in uniques]
        unique_parts = np.array(
            [self._partitioner(b, partitions) if b is not None else 0 for b, _ in encoded] + [0],
            dtype=np.int64,
        )
        code_index = pa.array(np.where(codes < 0, len(uniques), codes))
        key_values = pa.array([b for b, _ in encoded] + [None], pa.binary()).take(code_index)
        key_formats = pa.array([f for _, f in encoded] + [0], pa.int8()).take(code_index)
        parts = unique_parts[np.where(codes < 0, len(uniques), codes)]
        if (codes < 0).any():  # rows without a key are spread like unkeyed sends
            parts[codes < 0] = [self._partitioner(None, partitions) for _ in range(int((codes < 0).sum()))]
        return key_values, key_formats, parts

    def _append(self, topic: str, partition: int, batch: pa.RecordBatch, *, sync: bool) -> int:
        if self._txn is None:
            return append(self._broker, topic, partition, batch, sync=sync)
        return self._txn.append(topic, partition, batch, sync=sync)

    # transactions -----------------------------------------------------------------------
    def _transaction(self) -> ProducerTransaction:
        if self._closed:
            raise ClosedError("this producer is closed; create a new one with lab.producer()")
        if self._txn is None:
            raise ConfigError("transactions need a transactional producer: lab.producer(transactional_id='...')")
        return self._txn

    def init_transactions(self, timeout: float = 30.0) -> None:
        """Become the current producer of the transactional id: a producer that had it
        before is fenced (its next call raises :class:`~streamlab.errors.ProducerFencedError`)
        and the transaction it left open is aborted. Implied by the first ``begin_transaction``.
        (``timeout``, as in Kafka's clients, is for a remote coordinator: this one answers at once.)"""
        self._transaction().init()

    def begin_transaction(self) -> None:
        """Start a transaction: records sent from now until the commit are visible to
        ``read_committed`` consumers, replay and SQL only if it commits."""
        self._transaction().begin()

    def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        group_metadata: str | api.Consumer,
        timeout: float = 30.0,
    ) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) for the group (its
        name, or a consumer of it) with the transaction: they land if it commits, never if
        it aborts (consume-transform-produce, exactly once)."""
        group = group_metadata if isinstance(group_metadata, str) else group_metadata.group
        if group is None:
            raise NoGroupError("send_offsets_to_transaction needs a group: the consumer was made without group='...'")
        self._transaction().send_offsets(offsets, group)

    def commit_transaction(self, timeout: float = 30.0) -> None:
        """Store every record sent in the transaction, then commit it (markers written,
        offsets committed) before returning. If a record failed, raises: abort instead."""
        txn = self._transaction()
        txn.check_send("commit_transaction")
        self.flush(timeout)
        txn.end(commit=True)

    def abort_transaction(self, timeout: float = 30.0) -> None:
        """Abort the transaction: its records stay in the log (offsets are never reused)
        but ``read_committed`` readers never see them, and its offsets are not committed."""
        txn = self._transaction()
        txn.check_send("abort_transaction")
        self.flush(timeout)
        txn.end(commit=False)

    # lifecycle --------------------------------------------------------------------------
    def close(self, timeout: float | None = 30) -> None:
        """Send what is queued, then stop (a transaction still open is aborted). Safe to call twice."""
        if self._closed:
            return
        try:
            self.flush(timeout)
            if self._txn is not None and self._txn.state == "in_transaction" and not self._broker.closed:
                with contextlib.suppress(ProducerFencedError):  # then the newer producer aborted it
                    self._txn.end(commit=False)
        finally:
            with self._lock:
                self._closed = True
                self._wake.notify_all()
            self._sender.join(timeout)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Producer", "partition_for_key"]


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
            stacklevel=3,
        )
