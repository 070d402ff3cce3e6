"""The public contract, as typed Protocols: what every backend's clients offer.

``streamlab.connect()`` returns the one :class:`~streamlab.front.lab.Lab` front, whatever
the backend; its producers, consumers and share consumers come from the backend (the
embedded broker's or confluent-kafka's) and satisfy these Protocols, which mypy checks
(see ``streamlab/front/conformance.py``). The notebook layer and the CLI type against
them, never against one backend's classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Any, Literal, Protocol, Self

import pandas as pd

from streamlab.model.types import OffsetAndMetadata, Record, RecordMetadata, TopicPartition

AckType = Literal["accept", "release", "reject"]
AcknowledgementMode = Literal["implicit", "explicit"]
# Kafka's isolation.level: read_committed skips aborted transactions and stops at the last stable offset.
IsolationLevel = Literal["read_committed", "read_uncommitted"]


class Producer(Protocol):
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
        key_schema: Any = None,
        value_format: str | None = None,
        value_schema: Any = None,
    ) -> Future[RecordMetadata]:
        """Queue one record; the future gives its metadata once it is acknowledged.
        ``value_format="avro"``/``"jsonschema"`` (and ``key_format``) write Confluent's wire
        format, the schema registered under ``<topic>-value`` (``<topic>-key``)."""

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
        key_schema: Any = None,
        value_format: str | None = None,
        value_schema: Any = None,
    ) -> pd.DataFrame: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = 30) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

    # transactions (a producer made with transactional_id=...), named as in Kafka's clients
    def init_transactions(self, timeout: float = 30.0) -> None: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        group_metadata: str | Consumer,
        timeout: float = 30.0,
    ) -> None: ...
    def commit_transaction(self, timeout: float = 30.0) -> None: ...
    def abort_transaction(self, timeout: float = 30.0) -> None: ...


class Consumer(Protocol):
    group: str | None

    def subscribe(self, topics: Iterable[str] | None = None, *, pattern: str | None = None) -> None: ...
    def subscription(self) -> list[str]: ...
    def assign(self, partitions: Iterable[TopicPartition]) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Record]: ...
    def poll_frame(
        self, timeout: float = 1.0, max_records: int | None = None, *, raw: bool = False, headers: bool = False
    ) -> pd.DataFrame:
        """One poll's records as a DataFrame shaped like ``Lab.replay``, with ``topic`` first."""

    def position(self, tp: TopicPartition) -> int: ...
    def seek(self, tp: TopicPartition, offset: int) -> None: ...
    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None: ...
    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None: ...
    def seek_to_timestamp(self, timestamp: Any, partitions: Iterable[TopicPartition] | None = None) -> None: ...
    def commit(
        self, offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None, *, asynchronous: bool = False
    ) -> None: ...
    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    @property
    def member_id(self) -> str | None: ...
    @property
    def generation(self) -> int: ...


class ShareConsumer(Protocol):
    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Record]: ...
    def acknowledge(self, records: Record | Iterable[Record], type: AckType = "accept") -> None: ...
    def commit(self) -> dict[TopicPartition, Any]: ...
    def delivery_count(self, record: Record) -> int | None: ...
    def held(self) -> dict[TopicPartition, list[int]]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
