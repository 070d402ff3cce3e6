"""Small immutable value types shared by every layer.

Timestamps are integers in milliseconds since the Unix epoch (UTC), as in Kafka; the
``.time`` properties give tz-aware datetimes for people reading them in a notebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from streamlab.errors import InvalidOffsetError, InvalidTimestampError, UnknownPartitionError
from streamlab.model.serde import encode_str

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What a record timestamp may be: replay gives pandas timestamps and ``Record.time`` a
# datetime, so from the epoch (Kafka's producers refuse negative timestamps) to the last
# millisecond of year 9999 (the end of Python's datetime).
MIN_TIMESTAMP_MS = 0
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
# Offsets are Kafka's int64.
MAX_OFFSET = 2**63 - 1


def ms_to_datetime(ms: int) -> datetime:
    # timedelta, not ms / 1000: a float loses the milliseconds of far-off years
    return _EPOCH + timedelta(milliseconds=ms)


def check_timestamp(ms: object, *, what: str = "timestamp") -> int:
    """``ms`` if it is a storable record timestamp, else :class:`InvalidTimestampError`."""
    if isinstance(ms, float) and not math.isfinite(ms):
        raise InvalidTimestampError(f"{what} must be a finite number of milliseconds, got {ms!r}")
    if isinstance(ms, bool) or not isinstance(ms, int | np.integer):
        raise InvalidTimestampError(f"{what} must be an int of milliseconds since the epoch, got {ms!r}")
    if not MIN_TIMESTAMP_MS <= ms <= MAX_TIMESTAMP_MS:
        raise InvalidTimestampError(
            f"{what} {ms} ms is outside 0 (1970-01-01) .. {MAX_TIMESTAMP_MS} (9999-12-31T23:59:59.999Z), "
            "the range replay and Record.time can represent"
        )
    return int(ms)


def check_timestamps(ms: np.ndarray, *, what: str = "timestamp") -> None:
    """Every one of ``ms`` (int64) is a storable record timestamp, or the first bad one is named."""
    bad = np.flatnonzero((ms < MIN_TIMESTAMP_MS) | (ms > MAX_TIMESTAMP_MS))
    if len(bad):
        check_timestamp(int(ms[bad[0]]), what=f"{what} of row {int(bad[0])}")


def check_offset(offset: object, *, what: str = "offset") -> int:
    """``offset`` if it is a Kafka offset (an int from 0 to 2**63 - 1), else :class:`InvalidOffsetError`."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidOffsetError(f"{what} must be an integer from 0 to 2**63 - 1 (Kafka's int64), got {offset!r}")
    return offset


def unknown_partition(topic: str, partition: object, count: int) -> UnknownPartitionError:
    """The error for ``partition`` of ``topic`` outside 0..``count`` - 1 (or not an int)."""
    return UnknownPartitionError(
        f"topic {topic!r} has partitions 0..{count - 1}; there is no partition {partition!r}",
        topic=topic,
        partition=partition if isinstance(partition, int) else None,
    )


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    """One partition of one topic: the unit of ordering, storage and assignment."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


class _StoredAt:
    """What a consumed record and a produce acknowledgement both tell in the same fields:
    where and when the record was stored (a mixin, as a NamedTuple takes no other base)."""

    __slots__ = ()
    topic: str
    partition: int
    timestamp: int

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.timestamp)

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class _RecordFields(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: Any
    value: Any
    headers: dict[str, bytes] = {}  # noqa: RUF012 (defaults are not shared: consumers always pass one)


class Record(_RecordFields, _StoredAt):
    """A record as a consumer sees it (a named tuple: consumers build many thousands a second).

    ``key`` and ``value`` come back as they were sent: ``bytes`` as bytes, ``str`` as str,
    dicts/lists/numbers as the decoded JSON. ``headers`` maps header names to raw bytes
    (Kafka's header values are bytes; a ``str`` header value was sent as UTF-8).
    """

    __slots__ = ()  # still a bare tuple: no per-record __dict__


class _RecordMetadataFields(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


class RecordMetadata(_RecordMetadataFields, _StoredAt):
    """Where an acknowledged record was stored."""

    __slots__ = ()  # still a bare tuple: no __dict__


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A committed position: the offset of the *next* record to read, as in Kafka."""

    offset: int
    metadata: str = ""
    # The leader epoch of the last record consumed, as a Kafka client commits it (None: not
    # given); kept so OffsetFetch returns it (clients use it to detect log truncation).
    leader_epoch: int | None = None


def committable(tp: TopicPartition, value: object) -> OffsetAndMetadata:
    """What ``commit({tp: value})`` stores, checked: ``value`` is an offset or an
    :class:`OffsetAndMetadata` with an offset from 0 to 2**63 - 1 and str metadata."""
    if not isinstance(value, OffsetAndMetadata):
        return OffsetAndMetadata(check_offset(value, what=f"offset for {tp}"))
    check_offset(value.offset, what=f"offset for {tp}")
    if not isinstance(value.metadata, str):
        raise InvalidOffsetError(f"metadata for {tp} must be a str, got {type(value.metadata).__name__}")
    encode_str(value.metadata, what=f"metadata for {tp}")
    return value
