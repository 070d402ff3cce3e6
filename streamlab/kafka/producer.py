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
    OperationTimeoutError,
    RecordTooLargeError,
    StreamlabError,
    UnknownPartitionError,
)
from streamlab.kafka import KEY_FORMAT_HEADER, VALUE_FORMAT_HEADER, client_config, translate
from streamlab.model.frames import frame_rows
from streamlab.model.limits import RECORD_OVERHEAD
from streamlab.model.partitioner import PARTITIONERS, Partitioner
from streamlab.model.serde import FMT_JSON, encode, encode_headers
from streamlab.model.timeparse import record_timestamp
from streamlab.model.types import RecordMetadata

if TYPE_CHECKING:
    from streamlab.kafka.backend import KafkaBackend

Acks = Literal["all", -1, 0, 1]
_FORMAT_DIGITS = [str(f).encode() for f in range(10)]
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
    ) -> None:
        if acks not in ("all", -1, 0, 1):
            raise ConfigError(f"acks must be 'all', -1, 0 or 1, got {acks!r}")
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
        self._producer = ck.Producer(client_config(lab.bootstrap, {**lab.client_options, **(kafka_config or {})},
                                                   **settings))  # fmt: skip
        self._closed = False
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve, name=f"{client_id}-delivery", daemon=True)
        self._poller.start()
        lab._adopt(self)

    def __repr__(self) -> str:
        return f"<streamlab.KafkaProducer {self.client_id!r} queued={len(self._producer)}>"

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)  # runs the delivery callbacks

    # sending ----------------------------------------------------------------------------
    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Mapping[str, str | bytes] | list[tuple[str, str | bytes]] | None = None,
        timestamp: Any = None,
        partition: int | None = None,
    ) -> Future[RecordMetadata]:
        """Queue one record; the future resolves to its :class:`RecordMetadata` once the
        cluster acknowledged it. ``timestamp`` is checked as the embedded producer checks it
        (1970 to 9999; note that librdkafka takes a timestamp of 0 to mean "now")."""
        self._check_open()
        info = self._lab._topic_info(topic)
        key_bytes, key_fmt = encode(key, what="key")
        value_bytes, value_fmt = encode(value)
        size = len(key_bytes or b"") + len(value_bytes or b"") + RECORD_OVERHEAD
        if size > info.max_message_bytes:
            raise RecordTooLargeError(
                f"record of {size} bytes exceeds max.message.bytes={info.max_message_bytes} of topic {topic!r}",
                topic=topic,
            )
        if partition is not None:
            if isinstance(partition, bool) or not isinstance(partition, int):
                raise UnknownPartitionError(f"partition must be an int, got {partition!r}", topic=topic)
            self._lab._check_partition(topic, partition)
        elif self._chooser is not None:
            partition = self._chooser(key_bytes, info.partitions)
        ts = int(time.time() * 1000) if timestamp is None else record_timestamp(timestamp)
        record_headers: list[tuple[str, str | bytes | None]] = list(encode_headers(headers) or [])
        record_headers += [
            (KEY_FORMAT_HEADER, _FORMAT_DIGITS[key_fmt]),
            (VALUE_FORMAT_HEADER, _FORMAT_DIGITS[value_fmt]),
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
    ) -> pd.DataFrame:
        """One record per row of ``df``: ``key`` and ``timestamp`` name columns (times: datetimes,
        ISO strings or int milliseconds, as for ``send``, from 1970 to 9999), the other
        columns become the JSON-object value. Returns, aligned with ``df``'s index, the
        ``partition`` and ``offset`` each row was stored at. Acknowledged when it returns;
        validates every row before sending any. (``chunk_size`` is accepted for the
        embedded API; librdkafka batches by itself.)"""
        self._check_open()
        info = self._lab._topic_info(topic)
        rows = frame_rows(df, key=key, timestamp=timestamp)
        if partition is not None:
            self._lab._check_partition(topic, partition)
        n = len(df)
        values = rows.values.to_pylist()
        if rows.largest + RECORD_OVERHEAD > info.max_message_bytes:
            raise RecordTooLargeError(f"a row serialises to {rows.largest} bytes, over max.message.bytes", topic=topic)
        stamps = rows.timestamps.tolist()
        keys: list[tuple[bytes | None, int]] = [(None, 0)] * n
        if key is not None:
            codes, uniques = pd.factorize(df[key], use_na_sentinel=True)
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

        value_header = (VALUE_FORMAT_HEADER, _FORMAT_DIGITS[FMT_JSON])
        show = progress if progress is not None else n >= 200_000
        from tqdm.auto import tqdm

        with tqdm(total=n, disable=not show, desc=f"send_many → {topic}", unit="rec") as bar:
            for row in range(n):
                key_bytes, key_fmt = keys[row]
                chosen = partition
                if chosen is None and self._chooser is not None:
                    chosen = self._chooser(key_bytes, info.partitions)
                headers: list[tuple[str, str | bytes | None]] = [
                    (KEY_FORMAT_HEADER, _FORMAT_DIGITS[key_fmt]),
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

    # lifecycle --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this producer is closed; create a new one with lab.producer()")
        self._lab._check_open()

    def close(self, timeout: float | None = 30) -> None:
        """Send what is queued, then stop. Safe to call twice."""
        if self._closed:
            return
        try:
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
