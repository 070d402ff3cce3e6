"""Small immutable value types shared by every layer.

Timestamps are integers in milliseconds since the Unix epoch (UTC), as in Kafka; the
``.time`` properties give tz-aware datetimes for people reading them in a notebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    """One partition of one topic: the unit of ordering, storage and assignment."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


class Record(NamedTuple):
    """A record as a consumer sees it (a named tuple: consumers build many thousands a second).

    ``key`` and ``value`` come back as they were sent: ``bytes`` as bytes, ``str`` as str,
    dicts/lists/numbers as the decoded JSON. ``headers`` maps header names to raw bytes
    (Kafka's header values are bytes; a ``str`` header value was sent as UTF-8).
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: Any
    value: Any
    headers: dict[str, bytes] = {}  # noqa: RUF012 (defaults are not shared: consumers always pass one)

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.timestamp)

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class RecordMetadata(NamedTuple):
    """Where an acknowledged record was stored."""

    topic: str
    partition: int
    offset: int
    timestamp: int

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.timestamp)

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A committed position: the offset of the *next* record to read, as in Kafka."""

    offset: int
    metadata: str = ""
