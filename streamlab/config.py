"""Topic configuration with Kafka's names, accepted with dots or underscores.

``{"retention.ms": 1000}`` and ``{"retention_ms": 1000}`` mean the same; the canonical
form (the one stored and shown) is Kafka's dotted name. Unknown keys are an error rather
than silently ignored, because a typo in ``retention.ms`` would otherwise keep data forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamlab.errors import ConfigError

DAY_MS = 86_400_000


def integer_config(low: int, high: int | None = None, *, bounds: str = "") -> Any:
    """A config validator, ``check(name, value) -> int``, for integers from ``low`` (to
    ``high``; ``bounds`` says what sets the range); one for topic and group configs."""

    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            number = int(value)
        except ValueError as exc:
            raise ConfigError(f"{key} must be an integer, got {value!r}") from exc
        if number < low or (high is not None and number > high):
            allowed = f">= {low}" if high is None else str(low) if low == high else f"from {low} to {high}"
            raise ConfigError(f"{key} must be {allowed}{f' ({bounds})' if bounds else ''}, got {number}")
        return number

    return check


def choice_config(*choices: str) -> Any:
    """A config validator, ``check(name, value) -> str``, for one of ``choices``."""

    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")
        return str(value)

    return check


# How a topic's keys and values are read: "auto" decodes Confluent's wire format through the
# Schema Registry and spreads JSON objects into fields; the others force one reading.
RECORD_FORMATS: tuple[str, ...] = ("auto", "json", "avro", "protobuf", "jsonschema", "string", "bytes")
KEY_FORMAT_CONFIG = "streamlab.key.format"
VALUE_FORMAT_CONFIG = "streamlab.value.format"

# name -> (default, validator). Defaults follow Kafka, except segment.bytes: a sealed
# segment becomes one Parquet file, and 64 MiB keeps files few but replays cache-friendly;
# and segment.ms: a minute (Kafka: 7 days), so what a notebook produced is typed Parquet
# (smaller, faster SQL) a minute later rather than once 64 MiB have piled up. It counts
# from the segment's first append (broker/segment_timer.py); raise it for topics a
# long-running producer trickles into, which would otherwise get a file a minute.
TOPIC_CONFIGS: dict[str, tuple[Any, Any]] = {
    "retention.ms": (7 * DAY_MS, integer_config(-1)),
    "retention.bytes": (-1, integer_config(-1)),
    "cleanup.policy": ("delete", choice_config("delete", "compact", "compact,delete", "delete,compact")),
    "max.message.bytes": (1_048_588, integer_config(0)),
    "segment.bytes": (64 * 1024 * 1024, integer_config(1024)),
    "segment.ms": (60_000, integer_config(1)),
    "delete.retention.ms": (DAY_MS, integer_config(0)),
    "min.compaction.lag.ms": (0, integer_config(0)),
    "message.timestamp.type": ("CreateTime", choice_config("CreateTime", "LogAppendTime")),
    # Stored and shown; batches are kept and served as their producer compressed them
    # (no broker-side recompression yet), which is what "producer" means.
    "compression.type": ("producer", choice_config("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")),
    # One broker holds the only replica: 1 is the one value acks=all can honour.
    "min.insync.replicas": (1, integer_config(1, 1, bounds="streamlab is one broker")),
    # How replay, sql, poll, browse, the CLI and the widgets read this topic's keys and
    # values when a call does not say (streamlab.front.replay_frame). Kept among the
    # topic's configs so they live with the topic in the data directory and are seen
    # through `streamlab serve`; other Kafka clients show them and ignore them.
    KEY_FORMAT_CONFIG: ("auto", choice_config(*RECORD_FORMATS)),
    VALUE_FORMAT_CONFIG: ("auto", choice_config(*RECORD_FORMATS)),
}

LIST_CONFIGS = frozenset({"cleanup.policy"})  # configs whose value is a comma-separated list


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


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSettings:
    """Broker-wide settings, by Kafka's names (``server.properties``).

    ``auto_create_topics_enable`` (``auto.create.topics.enable``, default true as in Kafka):
    a Metadata request that names an unknown topic, and allows it, creates the topic with
    ``num_partitions`` partitions (``num.partitions``, default 1); so does the embedded
    producer's first send. ``default_replication_factor`` (``default.replication.factor``)
    is accepted at 1, the only value one broker can honour.
    """

    auto_create_topics_enable: bool = True
    num_partitions: int = 1
    default_replication_factor: int = 1
    # KIP-848 consumer groups: group.consumer.session.timeout.ms, group.consumer.heartbeat.interval.ms
    # (Kafka's defaults; validated by streamlab.groups.consumer_group.ConsumerGroupConfig)
    group_consumer_session_timeout_ms: int = 45_000
    group_consumer_heartbeat_interval_ms: int = 5_000

    def __post_init__(self) -> None:
        if not isinstance(self.auto_create_topics_enable, bool):
            raise ConfigError(f"auto.create.topics.enable must be a bool, got {self.auto_create_topics_enable!r}")
        if isinstance(self.num_partitions, bool) or not isinstance(self.num_partitions, int):
            raise ConfigError(f"num.partitions must be an integer, got {self.num_partitions!r}")
        if not 1 <= self.num_partitions <= 10_000:
            raise ConfigError(f"num.partitions must be from 1 to 10000, got {self.num_partitions}")
        if self.default_replication_factor != 1:
            raise ConfigError(
                "default.replication.factor must be 1 (streamlab is one broker), "
                f"got {self.default_replication_factor!r}"
            )
