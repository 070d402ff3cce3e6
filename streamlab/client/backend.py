"""The embedded backend: the backend port (:mod:`streamlab.port.backend`) over a :class:`Broker`.

Within one process, connecting twice to the same directory shares one broker (a notebook
re-running its first cell must not lock itself out); the broker closes with its last Lab.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from streamlab.broker import Broker, group_admin, query, retention, topics
from streamlab.broker import offsets as offset_ops
from streamlab.client.consumer import Consumer
from streamlab.client.producer import Producer
from streamlab.client.share_consumer import ShareConsumer
from streamlab.config import BrokerSettings
from streamlab.model.clock import SYSTEM_CLOCK, Clock
from streamlab.model.group_offsets import RESET_COLUMNS, lag_frame
from streamlab.model.views import Bounds
from streamlab.port.backend import OffsetRow, ShareGroupSnapshot, TopicRow
from streamlab.port.consumer_base import split_consumer_options
from streamlab.port.history import KEEP_MS, HistoryStore
from streamlab.port.producer_base import ProducerSettings
from streamlab.port.schemas import SchemaRegistryPort
from streamlab.port.share_base import split_share_consumer_options

_open: dict[Path, tuple[Broker, int]] = {}
_open_lock = threading.Lock()


def _acquire(path: Path, settings: BrokerSettings | None = None, clock: Clock | None = None) -> Broker:
    with _open_lock:
        broker, count = _open.get(path, (None, 0))
        if broker is None or broker.closed:
            broker, count = Broker(path, settings=settings, clock=clock or SYSTEM_CLOCK), 0
        elif settings is not None:  # one broker per directory: the latest connect's settings hold
            broker.settings = settings
        _open[path] = (broker, count + 1)
        return broker


def _release(broker: Broker) -> None:
    with _open_lock:
        held = _open.get(broker.data_dir)
        if held is None or held[0] is not broker:
            return
        if held[1] <= 1:
            del _open[broker.data_dir]
            broker.close()
        else:
            _open[broker.data_dir] = (broker, held[1] - 1)


class EmbeddedBackend:
    """A data directory opened in this process."""

    def __init__(self, path: str | Path, *, settings: BrokerSettings | None = None, clock: Clock | None = None) -> None:
        self.path = Path(path).resolve()
        self.broker = _acquire(self.path, settings, clock)
        self._history: HistoryStore | None = None

    def describe(self) -> str:
        return f"{self.path} topics={len(self.broker.topics)}"

    # topics -----------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int, config: dict[str, Any], replication_factor: int | None) -> None:
        topics.create_topic(self.broker, name, partitions, config)

    def create_partitions(self, name: str, partitions: int) -> None:
        topics.create_partitions(self.broker, name, partitions)

    def alter_topic_config(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        return topics.alter_config(self.broker, name, config)

    def topic_config(self, name: str) -> dict[str, Any]:
        return dict(self.broker.topic(name).config)

    def delete_topic(self, name: str) -> None:
        topics.delete_topic(self.broker, name)

    def topic_rows(self) -> Sequence[TopicRow]:
        return topics.describe_topics(self.broker)

    def offset_rows(self, topic: str) -> Sequence[OffsetRow]:
        return offset_ops.log_offsets(self.broker, topic)

    def partition_count(self, topic: str) -> int:
        return self.broker.topic(topic).partitions

    def offsets_for_time(self, topic: str, partitions: Sequence[int], ms: int) -> dict[int, int]:
        return {p: offset_ops.offset_for_time(self.broker, topic, p, ms) for p in partitions}

    def apply_retention(self, now_ms: int) -> retention.RetentionResult:
        return retention.apply_retention(self.broker, now_ms=now_ms)

    def roll(self, topic: str) -> None:
        for log in self.broker.topic(topic).logs:
            log.roll()

    # clients ----------------------------------------------------------------------------
    def producer(self, **config: Any) -> Producer:
        return Producer(self.broker, ProducerSettings(**config))

    def consumer(self, topics: Iterable[str] | str | None, **config: Any) -> Consumer:
        settings, rest = split_consumer_options(config)
        return Consumer(self.broker, topics, config=settings, **rest)

    def share_consumer(self, topics: Iterable[str] | str, **config: Any) -> ShareConsumer:
        settings, rest = split_share_consumer_options(config)
        return ShareConsumer(self.broker, topics, settings, **rest)

    def share_state(self, group: str) -> pd.DataFrame:
        from streamlab.broker.share_registry import share_state

        columns = ["topic", "partition", "offset", "state", "delivery_count", "owner", "lock_expires_ms"]
        df = pd.DataFrame(share_state(self.broker, group), columns=columns)
        df["lock_expires"] = pd.to_datetime(df.pop("lock_expires_ms").astype("Int64"), unit="ms", utc=True)
        return df

    def share_group_snapshot(self, group: str) -> ShareGroupSnapshot | None:
        from streamlab.broker.share_registry import share_groups

        found = share_groups(self.broker).get(group)
        if found is None:
            return None
        with found.lock:  # reentrant: partitions, records and members of one moment
            return ShareGroupSnapshot(
                found.partition_rows(), found.state_rows(), found.member_rows(),
                found.config.delivery_count_limit, found.config.dead_letter_topic,
            )  # fmt: skip

    def partition_bytes(self, topic: str, partition: int) -> int | None:
        return int(self.broker.log(topic, partition).size_bytes())

    # consumer groups ------------------------------------------------------------------
    def groups(self) -> pd.DataFrame:
        df = pd.DataFrame(group_admin.list_all_groups(self.broker),
                          columns=["group", "type", "state", "generation", "members", "assignor"])  # fmt: skip
        df["generation"] = df["generation"].astype("Int64")
        return df

    def describe_group(self, group: str) -> pd.DataFrame:
        df = pd.DataFrame(group_admin.describe_group(self.broker, group),
                          columns=["member", "client_id", "host", "topic", "partition", "member_epoch"])  # fmt: skip
        df["member_epoch"] = df["member_epoch"].astype("Int64")  # NA: a classic group's members have none
        return df

    def lag(self, group: str) -> pd.DataFrame:
        return lag_frame(group_admin.lag(self.broker, group))

    def rebalances(self, group: str) -> pd.DataFrame:
        columns = ["generation", "time_ms", "reason", "member", "topic", "partition", "change"]
        df = pd.DataFrame(group_admin.rebalances(self.broker, group), columns=columns)
        df.insert(1, "time", pd.to_datetime(df.pop("time_ms"), unit="ms", utc=True))
        return df

    def reset_offsets(self, group: str, to: Any, *, dry_run: bool, topics: list[str] | None) -> pd.DataFrame:
        rows = group_admin.reset_offsets(self.broker, group, to, dry_run=dry_run, topics=topics)
        return pd.DataFrame(rows, columns=RESET_COLUMNS)

    # analytics --------------------------------------------------------------------------
    def estimate_rows(self, topic: str, bounds: Bounds) -> int:
        return query.estimate_rows(self.broker, topic, bounds)

    def replay_table(
        self, topic: str, bounds: Bounds, *, raw: bool, headers: bool, progress: Callable[[int], object] | None,
        committed: bool = True,
    ) -> pa.Table:  # fmt: skip
        return query.replay(self.broker, topic, bounds, raw=raw, headers=headers, progress=progress,
                            committed=committed)  # fmt: skip

    def sql_table(self, statement: str, *, committed: bool = True) -> pa.Table:
        return query.sql(self.broker, statement, committed=committed)

    def transaction_rows(self, topic: str, partition: int, start: int, end: int) -> pa.Table:
        from streamlab.broker.transaction_markers import transaction_rows
        from streamlab.broker.transaction_registry import current_index

        index = current_index(self.broker)
        return transaction_rows(self.broker.log(topic, partition), index, topic, partition, start, end)

    def history(self) -> HistoryStore:
        if self._history is None:  # its tables are created on first use
            self._history = self.broker.history_store(keep_ms=KEEP_MS)
        return self._history

    def broker_to_serve(self) -> Broker:
        self.broker.check_open()
        return self.broker

    def schema_registry(self) -> SchemaRegistryPort:
        """The directory's registry: its ``_schemas`` topic, created on first use; the same
        one ``streamlab serve --schema-registry-port`` serves."""
        from streamlab.broker.schema_registry import schema_store

        return schema_store(self.broker)

    def has_schema_registry(self) -> bool:
        from streamlab.broker.schema_registry import SCHEMAS_TOPIC

        return SCHEMAS_TOPIC in self.broker.topics

    def close(self) -> None:
        _release(self.broker)
