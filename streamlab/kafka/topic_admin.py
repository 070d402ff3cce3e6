"""Topic administration on a Kafka cluster: the :class:`TopicAdmin` interface
:class:`~streamlab.kafka.backend.KafkaBackend` creates, grows, configures and deletes topics
through, its AdminClient engine :class:`KafkaTopicAdmin`, and the :class:`TopicInfo` the
lab caches per topic.

Separate from the lab because it is one of two engines behind one interface: librdkafka's
mock cluster has no admin APIs and gets :class:`~streamlab.kafka.mock_cluster.MockTopicAdmin`.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import confluent_kafka as ck
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from streamlab.config import TOPIC_CONFIGS
from streamlab.errors import ConfigError, OperationTimeoutError
from streamlab.kafka import translate

__all__ = ["KafkaTopicAdmin", "TopicAdmin", "TopicInfo"]


@dataclass(frozen=True, slots=True)
class TopicInfo:
    partitions: int
    max_message_bytes: int
    fetched: float = field(default_factory=time.monotonic)


class TopicAdmin(Protocol):
    """Creating, growing, configuring and deleting topics: by AdminClient, or by the mock's C API."""

    def create(self, name: str, partitions: int, config: dict[str, Any], replication: int | None) -> None: ...
    def delete(self, name: str) -> None: ...
    def grow(self, name: str, total: int) -> None: ...
    def configs(self, names: list[str]) -> dict[str, dict[str, Any]]: ...
    def alter(self, name: str, changes: dict[str, Any]) -> dict[str, Any]: ...
    def auto_creation(self) -> tuple[bool, int]:
        """The cluster's ``auto.create.topics.enable`` and ``num.partitions``."""
        ...


class KafkaTopicAdmin:
    def __init__(self, admin: AdminClient, timeout: float) -> None:
        self._admin, self._timeout = admin, timeout

    def _wait(self, futures: Mapping[Any, concurrent.futures.Future[Any]], topic: str, what: str) -> list[Any]:
        try:
            return [f.result(timeout=self._timeout + 5) for f in futures.values()]
        except ck.KafkaException as exc:
            raise translate(exc, topic=topic, context=f"{what} {topic!r}") from exc
        except concurrent.futures.TimeoutError as exc:
            raise OperationTimeoutError(f"{what} {topic!r} timed out after {self._timeout} s", topic=topic) from exc

    def create(self, name: str, partitions: int, config: dict[str, Any], replication: int | None) -> None:
        as_text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in config.items()}
        new = NewTopic(name, num_partitions=partitions, replication_factor=replication or -1, config=as_text)
        self._wait(self._admin.create_topics([new], operation_timeout=self._timeout), name, "creating topic")

    def delete(self, name: str) -> None:
        self._wait(self._admin.delete_topics([name], operation_timeout=self._timeout), name, "deleting topic")

    def grow(self, name: str, total: int) -> None:
        futures = self._admin.create_partitions([NewPartitions(name, total)], operation_timeout=self._timeout)
        self._wait(futures, name, "adding partitions to")

    def configs(self, names: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if not names:
            return out
        resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
        for resource, future in self._admin.describe_configs(resources, request_timeout=self._timeout).items():
            try:
                entries = future.result(timeout=self._timeout + 5)
            except (ck.KafkaException, concurrent.futures.TimeoutError):
                continue  # no DescribeConfigs (or not allowed): the config column stays empty
            out[resource.name] = {
                name: _typed(name, entry.value)
                for name, entry in sorted(entries.items())
                if name in TOPIC_CONFIGS or not entry.is_default
            }
        return out

    def alter(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        entries = [ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in changes.items()]
        resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        self._wait(self._admin.incremental_alter_configs([resource]), name, "altering the config of")
        return self.configs([name]).get(name, {})

    def auto_creation(self) -> tuple[bool, int]:
        """Read from a broker's config (DescribeConfigs); Kafka's defaults (true, 1) when the
        cluster does not say."""
        brokers = self._admin.list_topics(timeout=self._timeout).brokers
        if not brokers:
            return True, 1
        resource = ConfigResource(ConfigResource.Type.BROKER, str(min(brokers)))
        try:
            entries = self._admin.describe_configs([resource], request_timeout=self._timeout)[resource].result(
                timeout=self._timeout + 5
            )
        except (ck.KafkaException, concurrent.futures.TimeoutError):
            return True, 1
        enabled = entries.get("auto.create.topics.enable")
        partitions = entries.get("num.partitions")
        return (
            enabled is None or str(enabled.value).lower() == "true",
            int(partitions.value) if partitions is not None and partitions.value else 1,
        )


def _typed(name: str, value: str | None) -> Any:
    """A Kafka config string as the embedded broker shows it (ints for its numeric configs)."""
    if value is None or name not in TOPIC_CONFIGS:
        return value
    try:
        return TOPIC_CONFIGS[name][1](name, value)
    except ConfigError:
        return value
