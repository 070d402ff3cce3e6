"""Accepting the ways people write a point in time: ms integers, datetimes, ISO strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streamlab.errors import ConfigError


def to_ms(value: Any, *, what: str = "timestamp") -> int:
    """Milliseconds since the epoch. Naive datetimes and strings are taken as UTC."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a datetime, ISO string or int milliseconds, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"{what} {value!r} is not an ISO 8601 time") from exc
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    raise ConfigError(f"{what} must be a datetime, ISO string or int milliseconds, got {type(value).__name__}")
