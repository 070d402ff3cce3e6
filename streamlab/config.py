"""Topic configuration with Kafka's names, accepted with dots or underscores.

``{"retention.ms": 1000}`` and ``{"retention_ms": 1000}`` mean the same; the canonical
form (the one stored and shown) is Kafka's dotted name. Unknown keys are an error rather
than silently ignored, because a typo in ``retention.ms`` would otherwise keep data forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamlab.errors import ConfigError

DAY_MS = 86_400_000


def _int(min_value: int) -> Any:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            number = int(value)
        except ValueError as exc:
            raise ConfigError(f"{key} must be an integer, got {value!r}") from exc
        if number < min_value:
            raise ConfigError(f"{key} must be >= {min_value}, got {number}")
        return number

    return check


def _choice(*choices: str) -> Any:
    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")
        return str(value)

    return check


# name -> (default, validator). Defaults follow Kafka, except segment.bytes: a sealed
# segment becomes one Parquet file, and 64 MiB keeps files few but replays cache-friendly.
TOPIC_CONFIGS: dict[str, tuple[Any, Any]] = {
    "retention.ms": (7 * DAY_MS, _int(-1)),
    "retention.bytes": (-1, _int(-1)),
    "cleanup.policy": ("delete", _choice("delete", "compact", "compact,delete", "delete,compact")),
    "max.message.bytes": (1_048_588, _int(0)),
    "segment.bytes": (64 * 1024 * 1024, _int(1024)),
    "segment.ms": (7 * DAY_MS, _int(1)),
    "delete.retention.ms": (DAY_MS, _int(0)),
    "min.compaction.lag.ms": (0, _int(0)),
    "message.timestamp.type": ("CreateTime", _choice("CreateTime", "LogAppendTime")),
}


def canonical_key(key: str) -> str:
    return key.replace("_", ".")


def topic_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Full topic config: Kafka defaults with ``overrides`` validated on top."""
    config = {name: default for name, (default, _) in TOPIC_CONFIGS.items()}
    for raw_key, value in (overrides or {}).items():
        key = canonical_key(str(raw_key))
        if key not in TOPIC_CONFIGS:
            raise ConfigError(f"unknown topic config {raw_key!r}; known: {sorted(TOPIC_CONFIGS)}")
        config[key] = TOPIC_CONFIGS[key][1](key, value)
    return config
