"""Accepting the ways people write a point in time: ms integers, datetimes, ISO strings."""

from __future__ import annotations

import math
import numbers
from datetime import UTC, datetime
from typing import Any

from streamlab.errors import ConfigError, InvalidTimestampError
from streamlab.model.types import check_timestamp


def to_ms(value: Any, *, what: str = "timestamp") -> int:
    """Milliseconds since the epoch. Naive datetimes and strings are taken as UTC."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a datetime, ISO string or int milliseconds, got {value!r}")
    if isinstance(value, numbers.Integral | float):  # int, numpy integers, float, numpy's float64
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidTimestampError(f"{what} must be a finite number of milliseconds, got {value!r}")
        ms = int(value)
        if not -(2**63) <= ms < 2**63:  # Kafka's timestamps are int64
            raise InvalidTimestampError(f"{what} {value!r} ms does not fit Kafka's int64 timestamps")
        return ms
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"{what} {value!r} is not an ISO 8601 time") from exc
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        if value != value:  # NaT
            raise InvalidTimestampError(f"{what} is NaT (not a time)")
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        # exact integer arithmetic: timestamp() is a float and rounds far-off years
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    raise ConfigError(f"{what} must be a datetime, ISO string or int milliseconds, got {type(value).__name__}")


def record_timestamp(value: Any) -> int:
    """A record's timestamp for ``send``: :func:`to_ms`, checked to be one that replay and
    ``Record.time`` can represent (:class:`InvalidTimestampError` otherwise, as Kafka's
    INVALID_TIMESTAMP)."""
    return check_timestamp(to_ms(value))
