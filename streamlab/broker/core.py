"""Broker state: the open data directory, its catalog, and every partition log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamlab.config import BrokerSettings
from streamlab.errors import ClosedError, InvalidTopicError, UnknownTopicError
from streamlab.groups.coordinator import GroupCoordinator
from streamlab.groups.state import GroupEvent
from streamlab.model.clock import SYSTEM_CLOCK, Clock
from streamlab.model.names import catalog_topic_ok
from streamlab.model.types import unknown_partition
from streamlab.storage.base import PartitionLog
from streamlab.storage.engines import ENGINES
from streamlab.storage.history_store import CatalogHistory
from streamlab.storage.lock import DirectoryLock
from streamlab.storage.rebuild import open_catalog

log = logging.getLogger("streamlab.broker")


@dataclass(slots=True)
class TopicState:
    name: str
    config: dict[str, Any]
    logs: list[PartitionLog] = field(default_factory=list)

    @property
    def partitions(self) -> int:
        return len(self.logs)


class Broker:
    """An open data directory. Thread-safe; one per directory per process."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        engine: str = "parquet",
        settings: BrokerSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.clock = clock  # group sessions and timeouts, share-group locks (see model/clock.py)
        self.settings = settings or BrokerSettings()  # auto.create.topics.enable, num.partitions
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._dir_lock = DirectoryLock(self.data_dir)
        try:
            self.catalog = open_catalog(self.data_dir)  # rebuilt from the files if lost
            self.engine = ENGINES[engine](self.data_dir, self.catalog)
        except BaseException:
            self._dir_lock.release()
            raise
        self.lock = threading.RLock()
        # Signalled after every append so long-polling consumers wake at once.
        self.data_arrived = threading.Condition(threading.Lock())
        self.topics: dict[str, TopicState] = {}
        # Logs of deleted topics whose files a running reader still holds (see create_topic).
        self.deleted_logs: dict[str, list[PartitionLog]] = {}
        self.closed = False
        known = self.catalog.topics()
        for name in self.engine.remove_orphans(set(known)):
            log.warning("removed topics/%s: the catalog has no such topic (a deletion that did not finish)", name)
        for name, (partitions, config) in known.items():
            if not catalog_topic_ok(name, partitions, catalog=self.data_dir / "catalog.duckdb"):
                continue  # a name that is not a topic name is never used as a path
            state = TopicState(name, config)
            state.logs = [self.open_log(name, p, config) for p in range(partitions)]
            self.topics[name] = state
        self.groups = GroupCoordinator(self._partition_counts, self._record_group_events, clock=clock.monotonic,
                                       last_generation=self._last_generation)  # fmt: skip
        from streamlab.broker.retention import apply_retention  # a cycle: retention uses Broker

        apply_retention(self, now_ms=int(time.time() * 1000))
        from streamlab.broker.segment_timer import SegmentTimer  # a cycle: it uses Broker

        self._segment_timer = SegmentTimer(self)  # segment.ms

    def _partition_counts(self, topics: Sequence[str]) -> dict[str, int]:
        return {t: self.topics[t].partitions for t in topics if t in self.topics}

    def _last_generation(self, group_id: str) -> int:
        return self.catalog.last_generations().get(group_id, 0)

    def _record_group_events(self, group_id: str, events: list[GroupEvent]) -> None:
        if events and not self.closed:
            self.catalog.record_group_events(group_id, events)

    def open_log(self, topic: str, partition: int, config: dict[str, Any]) -> PartitionLog:
        return self.engine.open_log(topic, partition, segment_bytes=config["segment.bytes"])

    def topic(self, name: str) -> TopicState:
        self.check_open()
        if not isinstance(name, str):
            raise InvalidTopicError(f"a topic name is a str, got {type(name).__name__} {name!r}")
        state = self.topics.get(name)
        if state is None:
            raise UnknownTopicError(
                f"unknown topic {name!r}; create it with create_topic({name!r}, partitions=...)", topic=name
            )
        return state

    def log(self, topic: str, partition: int) -> PartitionLog:
        state = self.topic(topic)
        if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < state.partitions:
            raise unknown_partition(topic, partition, state.partitions)
        return state.logs[partition]

    def notify_data(self) -> None:
        with self.data_arrived:
            self.data_arrived.notify_all()

    def wait_for_data(self, timeout: float) -> None:
        with self.data_arrived:
            self.data_arrived.wait(timeout)

    def advertise(self, address: str, registry_url: str | None = None) -> None:
        """Record that this process serves the directory at ``address`` (``kafka://host:port``),
        and its Schema Registry at ``registry_url`` if it serves one, so another process that
        tries to open it is told where to connect."""
        self._dir_lock.advertise(address, registry_url)

    def history_store(self, *, keep_ms: int) -> CatalogHistory:
        """Offsets over time, in the catalog (what ``lab.start_history`` samples into)."""
        self.check_open()
        return CatalogHistory(self.catalog, keep_ms=keep_ms)

    def check_open(self) -> None:
        if self.closed:
            raise ClosedError(f"the broker for {self.data_dir} is closed; open it again with streamlab.connect()")

    def close(self) -> None:
        from streamlab.broker.transaction_registry import close_coordinator  # a cycle: it uses Broker

        close_coordinator(self)  # first, outside the lock: its timer may be writing a marker
        self._segment_timer.stop()  # likewise: it may be sealing a segment
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.groups.close()
            for state in self.topics.values():
                for log in state.logs:
                    log.close()
            self.catalog.close()
            self._dir_lock.release()
        self.notify_data()
