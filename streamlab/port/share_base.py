"""What every share consumer has in common, whichever backend it runs on: its
configuration, checked once (:class:`ShareConsumerConfig`); no positions (the share group
decides who gets which record); and notebook-safe lifecycle methods.

:class:`~streamlab.client.share_consumer.ShareConsumer` (embedded) and
:class:`~streamlab.kafka.share_consumer.KafkaShareConsumer` (``kafka://``) build on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, NoReturn

from streamlab.api import AcknowledgementMode
from streamlab.errors import ConfigError, ShareOperationError
from streamlab.model.share import ACK_TYPES, AckType, OffsetReset, ShareGroupConfig
from streamlab.model.types import Record, TopicPartition
from streamlab.port.lifecycle import ClientLifecycle


def positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShareConsumerConfig:
    """A share consumer's settings, with the names ``lab.share_consumer(...)`` takes;
    checked when made, so both backends refuse the same values the same way. The group's
    own settings (``delivery_count_limit``, ``dead_letter_topic``, ``auto_offset_reset``)
    are gathered in :attr:`group_config`."""

    group: str
    lock_ms: int = 30_000
    dead_letter_topic: str | None = None
    delivery_count_limit: int = 5
    auto_offset_reset: OffsetReset = "latest"
    acknowledgement_mode: AcknowledgementMode = "implicit"
    max_poll_records: int = 500
    client_id: str = "streamlab-share-consumer"
    group_config: ShareGroupConfig = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.group, str) or not self.group:
            raise ConfigError(f"a share consumer needs a group name, got {self.group!r}")
        if self.acknowledgement_mode not in ("implicit", "explicit"):
            raise ConfigError(
                f"acknowledgement_mode must be 'implicit' or 'explicit', got {self.acknowledgement_mode!r}"
            )
        positive("lock_ms", self.lock_ms)
        positive("max_poll_records", self.max_poll_records)
        group_config = ShareGroupConfig(delivery_count_limit=self.delivery_count_limit,
                                        dead_letter_topic=self.dead_letter_topic,
                                        auto_offset_reset=self.auto_offset_reset)  # fmt: skip
        object.__setattr__(self, "group_config", group_config)  # frozen: set once, here


def split_share_consumer_options(options: dict[str, Any]) -> tuple[ShareConsumerConfig, dict[str, Any]]:
    """``lab.share_consumer(...)``'s keyword arguments as a :class:`ShareConsumerConfig` and
    the rest (a backend's own settings) for the share consumer itself."""
    names = {f.name for f in dataclasses.fields(ShareConsumerConfig) if f.init}
    config = ShareConsumerConfig(**{k: v for k, v in options.items() if k in names})
    return config, {k: v for k, v in options.items() if k not in names}


class ShareConsumerBase(ClientLifecycle):
    """The settings every share consumer keeps and the checks its calls make alike."""

    _maker = "share_consumer"

    def __init__(self, topics: Iterable[str] | str, config: ShareConsumerConfig) -> None:
        self._config = config
        self.group = config.group
        self.client_id = config.client_id
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.lock_ms = config.lock_ms
        self._mode: AcknowledgementMode = config.acknowledgement_mode
        self._max_poll_records = config.max_poll_records
        self._closed = False

    def _poll_limit(self, max_records: int | None) -> int:
        """How many records a poll may return (``max_records``, else ``max_poll_records``)."""
        self._check_open()
        limit = self._max_poll_records if max_records is None else max_records
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"max_records must be a positive integer, got {max_records!r}")
        return limit

    def close(self) -> None:
        """Send the acknowledgements made so far and leave the group, which hands what this
        consumer still held to other members. Safe to call twice."""
        if self._mark_closed():
            self._leave()

    def _leave(self) -> None:
        """The engine's part of :meth:`close`, run once."""
        raise NotImplementedError

    def _acknowledging(self, records: Record | Iterable[Record], type: AckType) -> list[Record]:
        """The records an :meth:`acknowledge` call names, once the call is checked."""
        self._check_open()
        if type not in ACK_TYPES:
            raise ConfigError(f"type must be one of {list(ACK_TYPES)}, got {type!r}")
        return [records] if isinstance(records, Record) else list(records)

    def _no_positions(self, what: str) -> NoReturn:
        raise ShareOperationError(
            f"a share consumer cannot {what}: the share group decides which records each member gets, and "
            "records come back only by release, reject or lock expiry. To read a topic again from an "
            "offset or a time, use lab.consumer(...) with seek() or lab.replay(...)"
        )

    def seek(self, tp: TopicPartition, offset: int) -> NoReturn:
        self._no_positions("seek")

    def seek_to_beginning(self, partitions: Any = None) -> NoReturn:
        self._no_positions("seek")

    def seek_to_end(self, partitions: Any = None) -> NoReturn:
        self._no_positions("seek")

    def seek_to_timestamp(self, timestamp: Any, partitions: Any = None) -> NoReturn:
        self._no_positions("seek")

    def position(self, tp: TopicPartition) -> NoReturn:
        self._no_positions("report a position")

    def assign(self, partitions: Any) -> NoReturn:
        self._no_positions("be assigned partitions (every member reads every partition)")
