"""Share groups' vocabulary (KIP-932): acknowledgement types and a share group's settings,
the same for the embedded broker, the wire server and the Kafka backend."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from streamlab.errors import ConfigError

AckType = Literal["accept", "release", "reject"]
ACK_TYPES: tuple[AckType, ...] = ("accept", "release", "reject")
OffsetReset = Literal["earliest", "latest"]


@dataclass(slots=True)
class ShareGroupConfig:
    """A share group's settings, stored with the group (Kafka's group configs)."""

    delivery_count_limit: int = 5  # share.delivery.count.limit
    dead_letter_topic: str | None = None
    auto_offset_reset: OffsetReset = "latest"  # share.auto.offset.reset, used when a partition is first read
    max_record_locks: int = 2000  # share.partition.max.record.locks: most records in flight per partition
    # share.record.lock.duration.ms, for members over the wire (an embedded share consumer
    # passes its own lock_ms with each fetch)
    record_lock_ms: int = 30_000

    def __post_init__(self) -> None:
        limit = self.delivery_count_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ConfigError(f"delivery_count_limit (share.delivery.count.limit) must be 1..100, got {limit!r}")
        if self.auto_offset_reset not in ("earliest", "latest"):
            raise ConfigError(f"auto_offset_reset must be 'earliest' or 'latest', got {self.auto_offset_reset!r}")
        locks = self.max_record_locks
        if isinstance(locks, bool) or not isinstance(locks, int) or locks < 1:
            raise ConfigError(f"max_record_locks must be a positive integer, got {locks!r}")
        lock = self.record_lock_ms
        if isinstance(lock, bool) or not isinstance(lock, int) or not 1_000 <= lock <= 3_600_000:
            raise ConfigError(f"record_lock_ms (share.record.lock.duration.ms) must be 1000..3600000, got {lock!r}")
        if self.dead_letter_topic is not None and not isinstance(self.dead_letter_topic, str):
            raise ConfigError(f"dead_letter_topic must be a topic name or None, got {self.dead_letter_topic!r}")

    def updated(self, changes: Mapping[str, Any]) -> ShareGroupConfig:
        """A copy with ``changes`` (field name -> value), validated as a whole."""
        return ShareGroupConfig(**{**asdict(self), **changes})

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ShareGroupConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})
