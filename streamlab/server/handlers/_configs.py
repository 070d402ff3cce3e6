"""Topic configs as Kafka's admin APIs show them (CreateTopics v5+, DescribeConfigs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streamlab.config import TOPIC_CONFIGS, canonical_key
from streamlab.errors import ConfigError

# ConfigSource and ConfigType codes of the DescribeConfigs schema.
SOURCE_TOPIC = 1
SOURCE_DEFAULT = 5
TYPE_BOOLEAN, TYPE_STRING, TYPE_INT, TYPE_LONG, TYPE_LIST = 1, 2, 3, 5, 7

_TYPES = {
    "cleanup.policy": TYPE_LIST,
    "max.message.bytes": TYPE_INT,
    "segment.bytes": TYPE_INT,
    "message.timestamp.type": TYPE_STRING,
    "compression.type": TYPE_STRING,
    "min.insync.replicas": TYPE_INT,
}

# Settings tools pass when creating topics that have no meaning for streamlab's storage
# (replication with one broker, Kafka's index and flush tuning, tiered storage): refusing
# them would only refuse those tools, so they are accepted and dropped.
_IGNORED = {
    "unclean.leader.election.enable",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "preallocate",
    "file.delete.delay.ms",
    "min.cleanable.dirty.ratio",
    "max.compaction.lag.ms",
    "message.downconversion.enable",
    "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "local.retention.ms",
    "local.retention.bytes",
    "remote.storage.enable",
}


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str
    is_default: bool
    config_type: int

    @property
    def source(self) -> int:
        return SOURCE_DEFAULT if self.is_default else SOURCE_TOPIC


def config_type(name: str) -> int:
    return _TYPES.get(name, TYPE_LONG)


def entries(config: Mapping[str, Any], names: Iterable[str] | None = None) -> list[ConfigEntry]:
    """The topic's configs (only ``names`` if given, skipping unknown names as Kafka does)."""
    wanted = sorted(config) if names is None else [n for n in names if n in config]
    return [
        ConfigEntry(
            name,
            str(config[name]),
            config[name] == TOPIC_CONFIGS[name][0] if name in TOPIC_CONFIGS else False,
            _TYPES.get(name, TYPE_LONG),
        )
        for name in wanted
    ]


def overrides(pairs: Iterable[tuple[str, str | None]]) -> dict[str, Any]:
    """CreateTopics config pairs as streamlab topic config overrides."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        key = canonical_key(name)
        if key in _IGNORED:
            continue
        if value is None:
            raise ConfigError(f"config {name!r} has a null value")
        out[key] = value
    return out
