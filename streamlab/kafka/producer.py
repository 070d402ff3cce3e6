"""``KafkaProducer``: the embedded Producer's API over a confluent-kafka producer.

``send`` serialises and validates in the caller's thread exactly as the embedded producer
does (both are :class:`~streamlab.port.producer_base.ProducerBase`: same encoding, same
errors, raised at once), then hands the record to librdkafka; a poll thread serves
librdkafka's delivery reports, which resolve the futures. Keys are placed by librdkafka's
``murmur2_random`` partitioner, the Java client's murmur2, so a key lands on the partition
Kafka's own clients and the embedded broker choose; records without a key go to a random
partition (the embedded broker spreads them round-robin).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck
import numpy as np
import pandas as pd

from streamlab.errors import (
    InvalidTxnStateError,
    OperationTimeoutError,
    ProducerFencedError,
    StreamlabError,
)
from streamlab.kafka import client_config, log, translate
from streamlab.model.frames import FrameRows
from streamlab.model.partitioner import PARTITIONERS
from streamlab.model.serde import KEY_FORMAT_HEADER, VALUE_FORMAT_HEADER, format_header
from streamlab.model.types import OffsetAndMetadata, RecordMetadata, TopicPartition
from streamlab.port.producer_base import (
    UNASSIGNED,
    Headers,
    ProducerBase,
    ProducerSettings,
    Progress,
    encoded_keys,
)
from streamlab.port.schema_values import ProducerFormats

if TYPE_CHECKING:
    from streamlab import api
    from streamlab.kafka.backend import KafkaBackend

_SANE_MS = 946_684_800_000  # 2000-01-01: librdkafka's mock cluster reports a LogAppendTime of 1234
_QUEUE_WAIT_S = 60
_Delivered = Callable[[Any, Any], None]


class KafkaProducer(ProducerBase):
    """Sends records to a Kafka cluster. Use as a context manager, or call :meth:`close`.

    ``acks="all"`` (default) turns on idempotence, so retries never duplicate a record.
    ``linger_ms`` and ``batch_size`` (records per batch) go to librdkafka's ``linger.ms``
    and ``batch.num.messages``; ``kafka_config`` takes any other librdkafka setting.
    """

    def __init__(
        self, lab: KafkaBackend, settings: ProducerSettings, *, kafka_config: Mapping[str, Any] | None = None
    ) -> None:
        lab._check_open()
        # round_robin is chosen here; murmur2 is librdkafka's murmur2_random (Kafka's hash).
        chooser = PARTITIONERS[settings.partitioner]() if settings.partitioner == "round_robin" else None
        super().__init__(settings, formats=ProducerFormats(lab.schema_registry), partitioner=chooser)
        self._lab = lab
        durable = settings.durable
        config: dict[str, Any] = {
            "client.id": settings.client_id,
            "acks": "all" if durable else settings.acks,
            "enable.idempotence": durable,
            "linger.ms": settings.linger_ms,
            "batch.num.messages": settings.batch_size,
            "partitioner": "murmur2_random",
            "sticky.partitioning.linger.ms": 0,  # unkeyed records spread per record, not per batch
        }
        self._initialized = False
        self._in_transaction = False
        self._group_metadata: dict[str, Any] = {}  # group id -> librdkafka's metadata for it
        if settings.transactional_id is not None:  # idempotence is implied
            config["transactional.id"] = settings.transactional_id
            config["transaction.timeout.ms"] = settings.transaction_timeout_ms
        self._producer = ck.Producer(client_config(lab.bootstrap, {**lab.client_options, **(kafka_config or {})},
                                                   **config))  # fmt: skip
        self._stop_polling = threading.Event()
        self._poller = threading.Thread(target=self._serve, name=f"{self.client_id}-delivery", daemon=True)
        self._poller.start()
        lab._adopt(self)

    def __repr__(self) -> str:
        return f"<streamlab.KafkaProducer {self.client_id!r} queued={len(self._producer)}>"

    def _serve(self) -> None:
        while not self._stop_polling.is_set():
            try:
                self._producer.poll(0.05)  # runs the delivery callbacks
            except ck.KafkaException as exc:
                # A fatal error (a fenced transactional producer): every later call raises
                # it too; keep serving the delivery reports, which fail with it.
                log.info("producer %s: %s", self.client_id, exc)
                self._stop_polling.wait(0.05)

    # sending ----------------------------------------------------------------------------
    def _topic_limits(self, topic: str) -> tuple[int, int]:
        self._lab._check_open()
        info = self._lab._topic_to_produce_to(topic)
        return info.max_message_bytes, info.partitions

    def _check_partition(self, topic: str, partition: Any, partitions: int) -> None:
        self._lab._check_partition(topic, partition)  # the topic may have grown since its info was cached

    def _check_in_transaction(self, what: str) -> None:
        if not self._in_transaction:
            raise InvalidTxnStateError(
                "a transactional producer sends inside a transaction: call begin_transaction() first"
            )

    def _enqueue(
        self, topic: str, partition: int, key: bytes | None, key_format: int, value: bytes | None,
        value_format: int, timestamp: int, headers: Headers | None,
    ) -> Future[RecordMetadata]:  # fmt: skip
        # librdkafka takes a timestamp of 0 to mean "now": the sent time stands in for it below.
        record_headers: list[tuple[str, str | bytes | None]] = [
            *(headers or ()),
            (KEY_FORMAT_HEADER, format_header(key_format)),
            (VALUE_FORMAT_HEADER, format_header(value_format)),
        ]
        future: Future[RecordMetadata] = Future()
        self._produce(topic, value, key, partition, timestamp, record_headers, _resolver(future, timestamp))
        return future

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        timestamp: int,
        headers: list[tuple[str, str | bytes | None]],
        callback: _Delivered,
    ) -> None:
        deadline = time.monotonic() + _QUEUE_WAIT_S
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=partition,  # UNASSIGNED (-1): librdkafka's partitioner
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
                raise translate(exc, topic=topic, partition=None if partition == UNASSIGNED else partition) from exc

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is acknowledged (raises on timeout)."""
        left = self._producer.flush(-1 if timeout is None else timeout)
        if left:
            raise OperationTimeoutError(f"flush timed out with {left} records still queued")

    # bulk -------------------------------------------------------------------------------
    def _send_rows(
        self, topic: str, rows: FrameRows, keys: pd.Series | None, partition: int | None, partitions: int,
        chunk_size: int, bar: Progress,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        n = len(rows.timestamps)
        values = rows.values.to_pylist()
        stamps = rows.timestamps.tolist()
        encoded: list[tuple[bytes | None, int]] = [(None, 0)]
        index = [0] * n
        if keys is not None:
            at, encoded = encoded_keys(keys)
            index = at.tolist()
        parts = np.full(n, -1, dtype=np.int64)
        offsets = np.full(n, -1, dtype=np.int64)
        errors: list[StreamlabError] = []

        def placed(row: int) -> _Delivered:
            def delivered(error: Any, msg: Any) -> None:
                if error is not None:
                    errors.append(translate(error, topic=topic, partition=msg.partition()))
                else:
                    parts[row], offsets[row] = msg.partition(), msg.offset()

            return delivered

        key_headers = [(KEY_FORMAT_HEADER, format_header(fmt)) for _, fmt in encoded]
        value_header = (VALUE_FORMAT_HEADER, format_header(rows.value_format))
        chooser = self._partitioner
        for row in range(n):
            key_bytes = encoded[index[row]][0]
            chosen = UNASSIGNED if partition is None else partition
            if partition is None and chooser is not None:
                chosen = chooser(key_bytes, partitions)
            headers: list[tuple[str, str | bytes | None]] = [key_headers[index[row]], value_header]
            self._produce(topic, values[row], key_bytes, chosen, stamps[row], headers, placed(row))
            if row % 10_000 == 9_999:
                bar.update(10_000)
        bar.update(n % 10_000)
        self.flush(timeout=max(60.0, n / 5_000))
        if errors:
            raise errors[0]
        return parts, offsets

    # transactions -----------------------------------------------------------------------
    def _txn_call(self, what: str, run: Callable[[], object]) -> None:
        self._lab._check_open()
        try:
            run()
        except ck.KafkaException as exc:
            raise _txn_error(exc, what) from exc

    def _init_transactions(self, timeout: float) -> None:
        self._txn_call("init_transactions", lambda: self._producer.init_transactions(timeout))
        self._initialized = True

    def _begin_transaction(self) -> None:
        if not self._initialized:
            self._init_transactions(30.0)
        self._txn_call("begin_transaction", self._producer.begin_transaction)
        self._in_transaction = True

    def _send_offsets(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], group: str, group_metadata: str | api.Consumer,
        timeout: float,
    ) -> None:  # fmt: skip
        positions = [
            ck.TopicPartition(tp.topic, tp.partition, om.offset, metadata=om.metadata)
            if om.metadata
            else ck.TopicPartition(tp.topic, tp.partition, om.offset)
            for tp, om in offsets.items()
        ]
        metadata = self._metadata_of(group, group_metadata)
        self._txn_call(
            "send_offsets_to_transaction",
            lambda: self._producer.send_offsets_to_transaction(positions, metadata, timeout),
        )

    def _metadata_of(self, name: str, group: str | api.Consumer) -> Any:
        """librdkafka's group metadata: the consumer's own (member id and generation, so a
        zombie consumer's offsets are refused), or for a bare group id a consumer's made once."""
        found = getattr(group, "consumer_group_metadata", None)
        if found is not None:
            return found()
        if name not in self._group_metadata:
            # Never subscribed and closed at once: it only writes librdkafka's metadata blob.
            handle = ck.Consumer({"group.id": name, "bootstrap.servers": self._lab.bootstrap, "logger": log})
            try:
                self._group_metadata[name] = handle.consumer_group_metadata()
            finally:
                handle.close()
        return self._group_metadata[name]

    def _end_transaction(self, *, commit: bool, timeout: float) -> None:
        if commit:
            self._txn_call("commit_transaction", lambda: self._producer.commit_transaction(timeout))
        else:
            self._txn_call("abort_transaction", lambda: self._producer.abort_transaction(timeout))
        self._in_transaction = False

    # lifecycle --------------------------------------------------------------------------
    def _drain(self, timeout: float | None) -> None:
        if self._in_transaction:
            with contextlib.suppress(StreamlabError):  # fenced: the newer producer aborted it
                self.abort_transaction(30.0 if timeout is None else timeout)
        self.flush(timeout)

    def _stop(self, timeout: float | None) -> None:
        self._stop_polling.set()
        self._poller.join(timeout)
        self._lab._release(self)


def _resolver(future: Future[RecordMetadata], sent_ms: int) -> _Delivered:
    def delivered(error: Any, msg: Any) -> None:
        if error is not None:
            future.set_exception(translate(error, topic=msg.topic(), partition=msg.partition()))
            return
        kind, ts = msg.timestamp()
        if kind != ck.TIMESTAMP_LOG_APPEND_TIME or ts < _SANE_MS:
            ts = sent_ms
        future.set_result(RecordMetadata(msg.topic(), msg.partition(), msg.offset(), ts))

    return delivered


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
