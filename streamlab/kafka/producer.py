"""``KafkaProducer``: the embedded Producer's API over a confluent-kafka producer.

``send`` serialises and validates in the caller's thread exactly as the embedded producer
does (same :func:`streamlab.model.serde.encode`, same errors, raised at once), then hands
the record to librdkafka; a poll thread serves librdkafka's delivery reports, which
resolve the futures. Keys are placed by librdkafka's ``murmur2_random`` partitioner, the
Java client's murmur2, so a key lands on the partition Kafka's own clients and the
embedded broker choose; records without a key go to a random partition (the embedded
broker spreads them round-robin).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal

import confluent_kafka as ck
import numpy as np
import pandas as pd

from streamlab.errors import (
    ClosedError,
    ConfigError,
    InvalidTxnStateError,
    NoGroupError,
    OperationTimeoutError,
    ProducerFencedError,
    StreamlabError,
    UnknownPartitionError,
)
from streamlab.kafka import client_config, log, translate
from streamlab.model.limits import RECORD_OVERHEAD, check_record_size, record_size
from streamlab.model.partitioner import PARTITIONERS, Partitioner
from streamlab.model.serde import KEY_FORMAT_HEADER, VALUE_FORMAT_HEADER, encode, encode_headers, format_header
from streamlab.model.timeparse import record_timestamp
from streamlab.model.types import OffsetAndMetadata, RecordMetadata, TopicPartition, committable
from streamlab.port.schema_values import ProducerFormats, SchemaArg

if TYPE_CHECKING:
    from streamlab import api
    from streamlab.kafka.backend import KafkaBackend

Acks = Literal["all", -1, 0, 1]
_SANE_MS = 946_684_800_000  # 2000-01-01: librdkafka's mock cluster reports a LogAppendTime of 1234
_QUEUE_WAIT_S = 60


class KafkaProducer:
    """Sends records to a Kafka cluster. Use as a context manager, or call :meth:`close`.

    ``acks="all"`` (default) turns on idempotence, so retries never duplicate a record.
    ``linger_ms`` and ``batch_size`` (records per batch) go to librdkafka's ``linger.ms``
    and ``batch.num.messages``; ``kafka_config`` takes any other librdkafka setting.
    """

    def __init__(
        self,
        lab: KafkaBackend,
        *,
        acks: Acks = "all",
        linger_ms: float = 5,
        batch_size: int = 10_000,
        partitioner: str = "murmur2",
        client_id: str = "streamlab-producer",
        kafka_config: Mapping[str, Any] | None = None,
        transactional_id: str | None = None,
        transaction_timeout_ms: int = 60_000,
    ) -> None:
        if acks not in ("all", -1, 0, 1):
            raise ConfigError(f"acks must be 'all', -1, 0 or 1, got {acks!r}")
        if transactional_id is not None and (not isinstance(transactional_id, str) or not transactional_id):
            raise ConfigError(f"transactional_id must be a non-empty str, got {transactional_id!r}")
        if transactional_id is not None and acks not in ("all", -1):
            raise ConfigError("a transactional producer acknowledges with acks='all' (Kafka requires it)")
        if partitioner not in PARTITIONERS:
            raise ConfigError(f"partitioner must be one of {sorted(PARTITIONERS)}, got {partitioner!r}")
        lab._check_open()
        self._lab = lab
        self.client_id = client_id
        # round_robin is chosen here; murmur2 is librdkafka's murmur2_random (Kafka's hash).
        self._chooser: Partitioner | None = PARTITIONERS[partitioner]() if partitioner == "round_robin" else None
        full = acks in ("all", -1)
        settings: dict[str, Any] = {
            "client.id": client_id,
            "acks": "all" if full else acks,
            "enable.idempotence": full,
            "linger.ms": linger_ms,
            "batch.num.messages": batch_size,
            "partitioner": "murmur2_random",
            "sticky.partitioning.linger.ms": 0,  # unkeyed records spread per record, not per batch
        }
        self._transactional = transactional_id is not None
        self._initialized = False
        self._in_transaction = False
        self._group_metadata: dict[str, Any] = {}  # group id -> librdkafka's metadata for it
        if transactional_id is not None:  # idempotence is implied
            settings["transactional.id"] = transactional_id
            settings["transaction.timeout.ms"] = transaction_timeout_ms
        self._producer = ck.Producer(client_config(lab.bootstrap, {**lab.client_options, **(kafka_config or {})},
                                                   **settings))  # fmt: skip
        self._closed = False
        self._formats = ProducerFormats(lab.schema_registry)  # key_format/value_format
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve, name=f"{client_id}-delivery", daemon=True)
        self._poller.start()
        lab._adopt(self)

    def __repr__(self) -> str:
        return f"<streamlab.KafkaProducer {self.client_id!r} queued={len(self._producer)}>"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.05)  # runs the delivery callbacks
            except ck.KafkaException as exc:
                # A fatal error (a fenced transactional producer): every later call raises
                # it too; keep serving the delivery reports, which fail with it.
                log.info("producer %s: %s", self.client_id, exc)
                self._stop.wait(0.05)

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
        """Queue one record; the future resolves to its :class:`RecordMetadata` once the
        cluster acknowledged it. ``timestamp`` is checked as the embedded producer checks it
        (1970 to 9999; note that librdkafka takes a timestamp of 0 to mean "now").
        ``key_format``/``value_format`` ``"avro"`` or ``"jsonschema"``: as on the embedded
        producer, registered in ``connect(..., schema_registry=)``'s registry."""
        self._check_open()
        self._check_transaction()
        info = self._lab._topic_to_produce_to(topic)
        if key_format is not None or value_format is not None:
            key, value = self._formats.record(topic, key, value, key_format=key_format, key_schema=key_schema,
                                              value_format=value_format, value_schema=value_schema)  # fmt: skip
        key_bytes, key_fmt = encode(key, what="key")
        value_bytes, value_fmt = encode(value)
        check_record_size(record_size(key_bytes, value_bytes), info.max_message_bytes, topic=topic)
        if partition is not None:
            if isinstance(partition, bool) or not isinstance(partition, int):
                raise UnknownPartitionError(f"partition must be an int, got {partition!r}", topic=topic)
            self._lab._check_partition(topic, partition)
        elif self._chooser is not None:
            partition = self._chooser(key_bytes, info.partitions)
        ts = int(time.time() * 1000) if timestamp is None else record_timestamp(timestamp)
        record_headers: list[tuple[str, str | bytes | None]] = list(encode_headers(headers) or [])
        record_headers += [
            (KEY_FORMAT_HEADER, format_header(key_fmt)),
            (VALUE_FORMAT_HEADER, format_header(value_fmt)),
        ]
        future: Future[RecordMetadata] = Future()
        self._produce(topic, value_bytes, key_bytes, partition, ts, record_headers, self._resolver(future, ts))
        return future

    @staticmethod
    def _resolver(future: Future[RecordMetadata], sent_ms: int) -> Callable[[Any, Any], None]:
        def delivered(error: Any, msg: Any) -> None:
            if error is not None:
                future.set_exception(translate(error, topic=msg.topic(), partition=msg.partition()))
                return
            kind, ts = msg.timestamp()
            if kind != ck.TIMESTAMP_LOG_APPEND_TIME or ts < _SANE_MS:
                ts = sent_ms
            future.set_result(RecordMetadata(msg.topic(), msg.partition(), msg.offset(), ts))

        return delivered

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int | None,
        timestamp: int,
        headers: list[tuple[str, str | bytes | None]],
        callback: Callable[[Any, Any], None],
    ) -> None:
        deadline = time.monotonic() + _QUEUE_WAIT_S
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=-1 if partition is None else partition,  # -1: librdkafka's partitioner
                    timestamp=timestamp,
                    headers=headers,
                    on_delivery=callback,
                )
                return
            except BufferError:  # librdkafka's queue is full: wait for deliveries to drain it
                if time.monotonic() > deadline:
                    raise OperationTimeoutError(
                        f"librdkafka's send queue stayed full for {_QUEUE_WAIT_S} s; is the cluster reachable?",
                        topic=topic,
                    ) from None
                time.sleep(0.01)
            except ck.KafkaException as exc:
                raise translate(exc, topic=topic, partition=partition) from exc

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is acknowledged (raises on timeout)."""
        left = self._producer.flush(-1 if timeout is None else timeout)
        if left:
            raise OperationTimeoutError(f"flush timed out with {left} records still queued")

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
        ``key_format``/``value_format`` ``"avro"`` or ``"jsonschema"``: Confluent's wire
        format, as on the embedded producer (schemas derived from the dtypes when not given).

        Times, as for ``send``, from 1970 to 9999: datetimes (naive ones taken as UTC), ISO
        strings, or integers of epoch **milliseconds**, Kafka's unit. Other units are
        converted first: ``df["ts"] = pd.to_datetime(df["ts"], unit="s")`` (or "us", "ns").
        Dtypes come back from ``replay``: ``Int64`` with its NAs, bool, float, str,
        datetimes as ``datetime64[us, UTC]``, categoricals as their values; a column JSON
        cannot hold (Python objects, bytes, timedelta) raises :class:`SerializationError`
        naming it (see :mod:`streamlab.model.frames`). Returns, aligned with ``df``'s index, the
        ``partition`` and ``offset`` each row was stored at. Acknowledged when it returns;
        validates every row before sending any. (``chunk_size`` is accepted for the
        embedded API; librdkafka batches by itself.)"""
        self._check_open()
        self._check_transaction()
        info = self._lab._topic_to_produce_to(topic)
        rows = self._formats.frame_rows(topic, df, key=key, timestamp=timestamp, value_format=value_format,
                                        value_schema=value_schema)  # fmt: skip
        if partition is not None:
            self._lab._check_partition(topic, partition)
        n = len(df)
        values = rows.values.to_pylist()
        check_record_size(rows.largest + RECORD_OVERHEAD, info.max_message_bytes, topic=topic, what="a row")
        stamps = rows.timestamps.tolist()
        keys: list[tuple[bytes | None, int]] = [(None, 0)] * n
        if key is not None:
            column = self._formats.key_column(topic, df[key], key_format, key_schema)
            codes, uniques = pd.factorize(column, use_na_sentinel=True)
            encoded = [encode(None if pd.isna(u) else u, what="key") for u in uniques] + [(None, 0)]
            keys = [encoded[c] for c in codes.tolist()]
        parts = np.full(n, -1, dtype=np.int64)
        offsets = np.full(n, -1, dtype=np.int64)
        errors: list[StreamlabError] = []

        def placed(row: int) -> Callable[[Any, Any], None]:
            def delivered(error: Any, msg: Any) -> None:
                if error is not None:
                    errors.append(translate(error, topic=topic, partition=msg.partition()))
                else:
                    parts[row], offsets[row] = msg.partition(), msg.offset()

            return delivered

        value_header = (VALUE_FORMAT_HEADER, format_header(rows.value_format))
        show = progress if progress is not None else n >= 200_000
        from tqdm.auto import tqdm

        with tqdm(total=n, disable=not show, desc=f"send_many → {topic}", unit="rec") as bar:
            for row in range(n):
                key_bytes, key_fmt = keys[row]
                chosen = partition
                if chosen is None and self._chooser is not None:
                    chosen = self._chooser(key_bytes, info.partitions)
                headers: list[tuple[str, str | bytes | None]] = [
                    (KEY_FORMAT_HEADER, format_header(key_fmt)),
                    value_header,
                ]
                self._produce(topic, values[row], key_bytes, chosen, stamps[row], headers, placed(row))
                if row % 10_000 == 9_999:
                    bar.update(10_000)
            bar.update(n - bar.n)
            self.flush(timeout=max(60.0, n / 5_000))
        if errors:
            raise errors[0]
        return pd.DataFrame({"partition": parts.astype(np.int32), "offset": offsets}, index=df.index)

    # transactions -----------------------------------------------------------------------
    def _txn_call(self, what: str, run: Callable[[], object]) -> None:
        self._check_open()
        if not self._transactional:
            raise ConfigError("transactions need a transactional producer: lab.producer(transactional_id='...')")
        try:
            run()
        except ck.KafkaException as exc:
            raise _txn_error(exc, what) from exc

    def init_transactions(self, timeout: float = 30.0) -> None:
        """Become the current producer of the transactional id: a producer that had it
        before is fenced and the transaction it left open is aborted. Implied by the
        first ``begin_transaction``."""
        self._txn_call("init_transactions", lambda: self._producer.init_transactions(timeout))
        self._initialized = True

    def begin_transaction(self) -> None:
        if self._transactional and not self._initialized:
            self.init_transactions()
        self._txn_call("begin_transaction", self._producer.begin_transaction)
        self._in_transaction = True

    def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        group_metadata: str | api.Consumer,
        timeout: float = 30.0,
    ) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) for the group (its
        name, or a consumer of it) with the transaction (TxnOffsetCommit)."""
        positions = []
        for tp, value in offsets.items():
            om = committable(tp, value)
            if om.metadata:
                positions.append(ck.TopicPartition(tp.topic, tp.partition, om.offset, metadata=om.metadata))
            else:
                positions.append(ck.TopicPartition(tp.topic, tp.partition, om.offset))
        metadata = self._metadata_of(group_metadata)
        self._txn_call(
            "send_offsets_to_transaction",
            lambda: self._producer.send_offsets_to_transaction(positions, metadata, timeout),
        )

    def _metadata_of(self, group: str | api.Consumer) -> Any:
        """librdkafka's group metadata: the consumer's own (member id and generation, so a
        zombie consumer's offsets are refused), or for a bare group id a consumer's made once."""
        found = getattr(group, "consumer_group_metadata", None)
        if found is not None:
            return found()
        name = group if isinstance(group, str) else group.group
        if name is None:
            raise NoGroupError("send_offsets_to_transaction needs a group: the consumer was made without group='...'")
        if name not in self._group_metadata:
            # Never subscribed and closed at once: it only writes librdkafka's metadata blob.
            handle = ck.Consumer({"group.id": name, "bootstrap.servers": self._lab.bootstrap, "logger": log})
            try:
                self._group_metadata[name] = handle.consumer_group_metadata()
            finally:
                handle.close()
        return self._group_metadata[name]

    def commit_transaction(self, timeout: float = 30.0) -> None:
        """Send every record of the transaction, then commit it (raises if that fails:
        abort instead)."""
        self._txn_call("commit_transaction", lambda: self._producer.commit_transaction(timeout))
        self._in_transaction = False

    def abort_transaction(self, timeout: float = 30.0) -> None:
        self._txn_call("abort_transaction", lambda: self._producer.abort_transaction(timeout))
        self._in_transaction = False

    def _check_transaction(self) -> None:
        if self._transactional and not self._in_transaction:
            raise InvalidTxnStateError(
                "a transactional producer sends inside a transaction: call begin_transaction() first"
            )

    # lifecycle --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this producer is closed; create a new one with lab.producer()")
        self._lab._check_open()

    def close(self, timeout: float | None = 30) -> None:
        """Send what is queued, then stop (a transaction still open is aborted, as on the
        embedded broker, rather than left to time out). Safe to call twice."""
        if self._closed:
            return
        try:
            if self._in_transaction:
                with contextlib.suppress(StreamlabError):  # fenced: the newer producer aborted it
                    self.abort_transaction(30.0 if timeout is None else timeout)
            self.flush(timeout)
        finally:
            self._closed = True
            self._stop.set()
            self._poller.join(timeout)
            self._lab._release(self)

    def __enter__(self) -> KafkaProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# librdkafka's codes for a fenced producer: PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, _FENCED
_FENCED = frozenset({90, 47, -144})


def _txn_error(exc: ck.KafkaException, what: str) -> StreamlabError:
    """A transactional call's failure as the embedded producer reports it."""
    error = exc.args[0] if exc.args else None
    code = error.code() if error is not None and hasattr(error, "code") else None
    text = error.str() if error is not None and hasattr(error, "str") else str(exc)
    if code in _FENCED:
        return ProducerFencedError(
            f"{what}: {text}; a newer producer with the same transactional_id took over: close this producer"
        )
    if code == -172:  # _STATE: a call out of order (send or commit without begin_transaction)
        return InvalidTxnStateError(f"{what}: {text}")
    if error is not None and hasattr(error, "txn_requires_abort") and error.txn_requires_abort():
        return InvalidTxnStateError(f"{what}: {text}; abort_transaction() and try again")
    return translate(exc, context=what)
