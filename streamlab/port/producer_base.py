"""What every producer does, whichever backend it runs on: its settings, checked once; the
caller's side of ``send`` and ``send_many`` (serialisation, formats, size, partition and
timestamp checks, so bad input raises the same error at once everywhere); the
transaction calls' state checks; ``close`` and the context manager.

An engine implements only what differs: how a validated record is queued
(:meth:`ProducerBase._enqueue`), how a frame's rows are sent
(:meth:`ProducerBase._send_rows`), what a topic's limits are, and the transaction calls.
:class:`~streamlab.client.producer.Producer` (embedded) and
:class:`~streamlab.kafka.producer.KafkaProducer` (``kafka://``) build on it.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

import numpy as np
import orjson
import pandas as pd

from streamlab.errors import ClosedError, ConfigError, NoGroupError
from streamlab.model.frames import FrameRows
from streamlab.model.limits import RECORD_OVERHEAD, check_record_size, record_size
from streamlab.model.partitioner import PARTITIONERS, Partitioner
from streamlab.model.serde import FMT_JSON, FMT_NULL, FMT_STR, JSON_OPTIONS, encode, encode_headers, encode_str
from streamlab.model.timeparse import record_timestamp
from streamlab.model.types import OffsetAndMetadata, RecordMetadata, TopicPartition, committable, unknown_partition
from streamlab.port.schema_values import ProducerFormats, SchemaArg

if TYPE_CHECKING:
    from streamlab import api

Acks = Literal["all", -1, 0, 1]
Headers = list[tuple[str, bytes]]
# The partition an engine gets for a record its client library places itself (librdkafka's
# own partitioner, Kafka's murmur2): librdkafka's RD_KAFKA_PARTITION_UA.
UNASSIGNED = -1
CLOSED = "this producer is closed; create a new one with lab.producer()"
_dumps = orjson.dumps


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ProducerSettings:
    """What ``lab.producer(...)`` takes on every backend (``kafka://`` adds ``kafka_config``).

    ``acks="all"`` (default) acknowledges a record once it is durable: fsynced on the
    embedded broker, replicated with idempotence on Kafka; ``acks=1`` once the leader
    wrote it; ``acks=0`` is treated like 1 by the embedded broker. ``linger_ms`` is how
    long the producer waits for more records before writing; ``batch_size`` is how many
    queued records make a batch. ``partitioner`` places records without an explicit
    partition: ``"murmur2"`` (Kafka's, by key; unkeyed records spread) or
    ``"round_robin"``. ``transactional_id`` makes a transactional producer (which needs
    ``acks="all"``, as Kafka does), whose open transactions time out after
    ``transaction_timeout_ms``."""

    acks: Acks = "all"
    linger_ms: float = 5
    batch_size: int = 10_000
    partitioner: str = "murmur2"
    client_id: str = "streamlab-producer"
    transactional_id: str | None = None
    transaction_timeout_ms: int = 60_000  # Kafka's transaction.timeout.ms

    def __post_init__(self) -> None:
        if self.acks not in ("all", -1, 0, 1):
            raise ConfigError(f"acks must be 'all', -1, 0 or 1, got {self.acks!r}")
        if self.partitioner not in PARTITIONERS:
            raise ConfigError(f"partitioner must be one of {sorted(PARTITIONERS)}, got {self.partitioner!r}")
        if self.transactional_id is None:
            return
        if not isinstance(self.transactional_id, str) or not self.transactional_id:
            raise ConfigError(f"transactional_id must be a non-empty str, got {self.transactional_id!r}")
        if not self.durable:
            raise ConfigError("a transactional producer acknowledges with acks='all' (Kafka requires it)")
        timeout = self.transaction_timeout_ms
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise ConfigError(f"transaction_timeout_ms must be a positive int, got {timeout!r}")

    @property
    def durable(self) -> bool:
        """Whether a record is acknowledged only once durable (``acks`` "all" or -1)."""
        return self.acks in ("all", -1)


class Progress(Protocol):
    """The part of a tqdm bar :meth:`ProducerBase._send_rows` uses."""

    def update(self, n: int) -> object: ...


class ProducerBase(ABC):
    """A producer's shared half. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self, settings: ProducerSettings, *, formats: ProducerFormats, partitioner: Partitioner | None
    ) -> None:
        """``partitioner`` places records sent without a partition; None leaves them to the
        engine's client library (:data:`UNASSIGNED`)."""
        self.settings = settings
        self.client_id = settings.client_id
        self._formats = formats  # key_format/value_format
        self._partitioner = partitioner
        self._transactional = settings.transactional_id is not None
        self._closed = False

    # what an engine implements ----------------------------------------------------------
    @abstractmethod
    def _topic_limits(self, topic: str) -> tuple[int, int]:
        """``topic``'s max.message.bytes and partition count, the topic created first if
        the backend creates topics on first use; raises if the lab is closed."""

    @abstractmethod
    def _check_in_transaction(self, what: str) -> None:
        """Raise :class:`~streamlab.errors.InvalidTxnStateError` unless a transaction is
        open (called for transactional producers only)."""

    @abstractmethod
    def _enqueue(
        self, topic: str, partition: int, key: bytes | None, key_format: int, value: bytes | None,
        value_format: int, timestamp: int, headers: Headers | None,
    ) -> Future[RecordMetadata]:  # fmt: skip
        """Queue one validated, serialised record (``partition`` may be :data:`UNASSIGNED`)."""

    @abstractmethod
    def _send_rows(
        self, topic: str, rows: FrameRows, keys: pd.Series | None, partition: int | None, partitions: int,
        chunk_size: int, bar: Progress,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Send every row of a validated frame (``keys``: its key column, formats applied);
        the partition and offset of each, once every row is acknowledged."""

    @abstractmethod
    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is acknowledged (raises on timeout)."""

    @abstractmethod
    def _init_transactions(self, timeout: float) -> None: ...

    @abstractmethod
    def _begin_transaction(self) -> None: ...

    @abstractmethod
    def _send_offsets(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], group: str, group_metadata: str | api.Consumer,
        timeout: float,
    ) -> None:  # fmt: skip
        """Commit ``offsets`` for ``group`` (``group_metadata`` names it, or is a consumer of it)."""

    @abstractmethod
    def _end_transaction(self, *, commit: bool, timeout: float) -> None: ...

    @abstractmethod
    def _drain(self, timeout: float | None) -> None:
        """Before closing: send what is queued and abort a transaction still open."""

    @abstractmethod
    def _stop(self, timeout: float | None) -> None:
        """Stop the engine's threads and let go of its client (``_closed`` is already set)."""

    # sending ----------------------------------------------------------------------------
    def _check_partition(self, topic: str, partition: Any, partitions: int) -> None:
        """Called for a partition outside 0..``partitions``-1 (or not an int). An engine
        whose partition counts may be stale looks again before raising."""
        raise unknown_partition(topic, partition, partitions)

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
        """Queue one record; the future resolves to its :class:`RecordMetadata` once it is
        stored (per ``acks``; on ``kafka://``, once the cluster acknowledged it).

        Serialised and checked in the caller's thread, so bad input raises at once: ``str``
        is UTF-8, ``bytes`` stay bytes, anything else JSON-serialisable becomes compact JSON
        (:class:`~streamlab.errors.SerializationError` otherwise).

        ``timestamp`` (default: now) is a datetime, ISO string or int milliseconds from
        1970-01-01 to 9999-12-31 UTC, what replay can represent; others raise
        :class:`~streamlab.errors.InvalidTimestampError` (Kafka's INVALID_TIMESTAMP).

        ``value_format="avro"`` or ``"jsonschema"`` writes the value in Confluent's wire
        format under ``value_schema`` (its text or a dict; default: the latest version of
        subject ``<topic>-value``), registered in the lab's Schema Registry (the directory's,
        or ``connect(..., schema_registry=)``'s), as confluent-kafka's serializers do;
        ``key_format``/``key_schema`` likewise for the key (see
        :mod:`streamlab.port.schema_values`)."""
        # This is the per-record hot path: the common cases (a dict value, a str key, a
        # record within the size limit) are inlined, everything else goes through
        # serde.encode and limits.check_record_size.
        if self._closed:
            raise ClosedError(CLOSED)
        if self._transactional:  # before the topic, which a first send may create
            self._check_in_transaction("send")
        limit, partitions = self._topic_limits(topic)
        if key_format is not None or value_format is not None:
            key, value = self._formats.record(topic, key, value, key_format=key_format, key_schema=key_schema,
                                              value_format=value_format, value_schema=value_schema)  # fmt: skip
        if type(value) is dict:
            try:
                value_bytes: bytes | None = _dumps(value, option=JSON_OPTIONS)
                value_fmt = FMT_JSON
            except (TypeError, ValueError):
                value_bytes, value_fmt = encode(value)  # raises SerializationError
        else:
            value_bytes, value_fmt = encode(value)
        if type(key) is str:
            try:
                key_bytes: bytes | None = key.encode()
            except UnicodeEncodeError:
                key_bytes = encode_str(key, what="key")  # raises SerializationError
            key_fmt = FMT_STR
        else:
            key_bytes, key_fmt = encode(key, what="key")
        size = record_size(key_bytes, value_bytes)
        if size > limit:
            check_record_size(size, limit, topic=topic)
        if partition is None:
            partitioner = self._partitioner
            partition = UNASSIGNED if partitioner is None else partitioner(key_bytes, partitions)
        elif isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < partitions:
            self._check_partition(topic, partition, partitions)
        ts = time.time_ns() // 1_000_000 if timestamp is None else record_timestamp(timestamp)
        header_list = encode_headers(headers) if headers else None
        return self._enqueue(topic, partition, key_bytes, key_fmt, value_bytes, value_fmt, ts, header_list)

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
        ``partition`` and ``offset`` each row was stored at. Durable (per ``acks``;
        acknowledged, on ``kafka://``) when it returns; validates every row before writing
        any. ``chunk_size`` rows make one batch on the embedded broker (librdkafka batches
        by itself)."""
        if self._closed:
            raise ClosedError(CLOSED)
        if self._transactional:  # before the topic, which a first send may create
            self._check_in_transaction("send")
        limit, partitions = self._topic_limits(topic)
        rows = self._formats.frame_rows(topic, df, key=key, timestamp=timestamp, value_format=value_format,
                                        value_schema=value_schema)  # fmt: skip
        if partition is not None and (
            isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < partitions
        ):
            self._check_partition(topic, partition, partitions)
        check_record_size(rows.largest + RECORD_OVERHEAD, limit, topic=topic, what="a row")
        keys = None if key is None else self._formats.key_column(topic, df[key], key_format, key_schema)
        n = len(df)
        show = progress if progress is not None else n >= 200_000
        from tqdm.auto import tqdm

        with tqdm(total=n, disable=not show, desc=f"send_many → {topic}", unit="rec") as bar:
            parts, offsets = self._send_rows(topic, rows, keys, partition, partitions, chunk_size, bar)
        return pd.DataFrame({"partition": parts.astype(np.int32), "offset": offsets}, index=df.index)

    # transactions -----------------------------------------------------------------------
    def _check_transactional(self) -> None:
        if self._closed:
            raise ClosedError(CLOSED)
        if not self._transactional:
            raise ConfigError("transactions need a transactional producer: lab.producer(transactional_id='...')")

    def init_transactions(self, timeout: float = 30.0) -> None:
        """Become the current producer of the transactional id: a producer that had it
        before is fenced (its next call raises :class:`~streamlab.errors.ProducerFencedError`)
        and the transaction it left open is aborted. Implied by the first ``begin_transaction``.
        (``timeout``, as in Kafka's clients, is for a remote coordinator; the embedded one
        answers at once.)"""
        self._check_transactional()
        self._init_transactions(timeout)

    def begin_transaction(self) -> None:
        """Start a transaction: records sent from now until the commit are visible to
        ``read_committed`` consumers, replay and SQL only if it commits."""
        self._check_transactional()
        self._begin_transaction()

    def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        group_metadata: str | api.Consumer,
        timeout: float = 30.0,
    ) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) for the group (its
        name, or a consumer of it) with the transaction (Kafka's TxnOffsetCommit): they
        land if it commits, never if it aborts (consume-transform-produce, exactly once)."""
        self._check_transactional()
        group = group_metadata if isinstance(group_metadata, str) else group_metadata.group
        if group is None:
            raise NoGroupError("send_offsets_to_transaction needs a group: the consumer was made without group='...'")
        positions = {tp: committable(tp, value) for tp, value in offsets.items()}
        self._send_offsets(positions, group, group_metadata, timeout)

    def commit_transaction(self, timeout: float = 30.0) -> None:
        """Store every record sent in the transaction, then commit it (markers written,
        offsets committed) before returning. If a record failed, raises: abort instead."""
        self._check_transactional()
        self._end_transaction(commit=True, timeout=timeout)

    def abort_transaction(self, timeout: float = 30.0) -> None:
        """Abort the transaction: its records stay in the log (offsets are never reused)
        but ``read_committed`` readers never see them, and its offsets are not committed."""
        self._check_transactional()
        self._end_transaction(commit=False, timeout=timeout)

    # lifecycle --------------------------------------------------------------------------
    def close(self, timeout: float | None = 30) -> None:
        """Send what is queued, then stop (a transaction still open is aborted rather than
        left to time out). Safe to call twice."""
        if self._closed:
            return
        try:
            self._drain(timeout)
        finally:
            self._closed = True
            self._stop(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encoded_keys(column: pd.Series) -> tuple[np.ndarray, list[tuple[bytes | None, int]]]:
    """A key column encoded once per distinct key: each row's index into the encodings,
    whose last entry is the null key (a row without one)."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    encoded = [encode(None if pd.isna(u) else u, what="key") for u in uniques]
    encoded.append((None, FMT_NULL))
    return np.where(codes < 0, len(uniques), codes), encoded
