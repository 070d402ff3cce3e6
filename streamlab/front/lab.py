"""``Lab``: what ``streamlab.connect`` returns, written once over a backend port.

Everything here is the same whatever the backend: arguments checked, names validated,
config keys accepted with dots or underscores, times parsed, results shaped into the same
DataFrames, replays with a progress bar, SQL checked. The backend (:mod:`.port`) is the
embedded broker or a Kafka cluster; it answers with rows and Arrow tables.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from streamlab import api
from streamlab.errors import (
    InvalidPartitionsError,
    UnknownGroupWarning,
    UnknownPartitionError,
    UnsupportedOperationError,
)
from streamlab.front.replay_frame import replay_bound, replay_dataframe
from streamlab.front.user_sql import arrow_frame, check_statement, query_errors
from streamlab.model.names import MAX_PARTITIONS, validate_topic_name
from streamlab.model.timeparse import to_ms
from streamlab.model.views import Bounds
from streamlab.port.backend import Backend

PROGRESS_FROM_ROWS = 500_000  # replays at least this large show a progress bar unless progress=False


class Lab:
    """A broker you can produce to, consume from, replay and query (embedded or Kafka)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._closed = False

    def __repr__(self) -> str:
        return f"<streamlab.Lab {self.backend.describe()}{' closed' if self._closed else ''}>"

    # topics -----------------------------------------------------------------------------
    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        config: Mapping[str, Any] | None = None,
        *,
        replication_factor: int | None = None,
    ) -> None:
        """Create a topic; ``config`` keys may use dots or underscores (``retention.ms``).
        ``replication_factor`` defaults to the cluster's (1 on the embedded broker)."""
        validate_topic_name(name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidPartitionsError(
                f"partitions must be an integer from 1 to {MAX_PARTITIONS}, got {partitions!r}", topic=name
            )
        self.backend.create_topic(name, partitions, _dotted(config), replication_factor)

    def create_partitions(self, name: str, partitions: int) -> None:
        """Grow ``name`` to ``partitions`` partitions (Kafka never shrinks a topic)."""
        self.backend.create_partitions(name, partitions)

    def alter_topic_config(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return self.backend.alter_topic_config(name, _dotted(config))

    def delete_topic(self, name: str) -> None:
        self.backend.delete_topic(name)

    def topics(self) -> pd.DataFrame:
        """One row per topic: partitions, records (high watermark - log start), bytes, config."""
        return pd.DataFrame(self.backend.topic_rows(), columns=["name", "partitions", "records", "bytes", "config"])

    def offsets(self, topic: str) -> pd.DataFrame:
        columns = ["partition", "log_start_offset", "high_watermark"]
        return pd.DataFrame(self.backend.offset_rows(topic), columns=columns)

    def apply_retention(self, *, now: Any = None) -> Any:
        """Delete expired segments and compact compacted topics now (the embedded broker
        also does it on open and whenever a segment is sealed)."""
        now_ms = int(time.time() * 1000) if now is None else to_ms(now, what="now")
        return self.backend.apply_retention(now_ms)

    def roll(self, topic: str) -> None:
        """Seal every partition's active segment into Parquet now."""
        self.backend.roll(topic)

    # clients ----------------------------------------------------------------------------
    def producer(self, **config: Any) -> api.Producer:
        return self.backend.producer(**config)

    def consumer(self, topics: Iterable[str] | str | None = None, **config: Any) -> api.Consumer:
        return self.backend.consumer(topics, **config)

    def share_consumer(
        self,
        topics: Iterable[str] | str,
        *,
        group: str,
        lock_ms: int = 30_000,
        dead_letter_topic: str | None = None,
        delivery_count_limit: int = 5,
        client_id: str = "streamlab-share-consumer",
        **config: Any,
    ) -> api.ShareConsumer:
        """A member of share group ``group`` (KIP-932): records are handed out one member at
        a time under a ``lock_ms`` lock and acknowledged one by one (accept, release,
        reject). ``auto_offset_reset`` (default "latest", as in Kafka) and
        ``acknowledgement_mode`` ("implicit" or "explicit") are among ``config``."""
        return self.backend.share_consumer(
            topics, group=group, lock_ms=lock_ms, dead_letter_topic=dead_letter_topic,
            delivery_count_limit=delivery_count_limit, client_id=client_id, **config,
        )  # fmt: skip

    def share_state(self, group: str) -> pd.DataFrame:
        """One row per in-flight record of share group ``group``: topic, partition, offset,
        state (available/acquired/acknowledged/archived), delivery_count, owner, lock_expires."""
        return self.backend.share_state(group)

    # consumer groups ------------------------------------------------------------------
    def groups(self) -> pd.DataFrame:
        """Every group: classic consumer groups and share groups, told apart by ``type``."""
        return self.backend.groups()

    def describe_group(self, group: str) -> pd.DataFrame:
        return self.backend.describe_group(group)

    def lag(self, group: str) -> pd.DataFrame:
        """Per partition: committed offset, end offset, lag in records and in time. A group
        with nothing committed and no members gives an empty frame and an
        :class:`~streamlab.errors.UnknownGroupWarning` naming the groups there are."""
        lag = self.backend.lag(group)
        if lag.empty:
            try:
                known = self.backend.groups()["group"].tolist()
            except UnsupportedOperationError:  # a cluster without ListGroups (librdkafka's mock)
                return lag
            if group not in known:
                warnings.warn(
                    f"there is no group {group!r} (no members, no committed offsets); groups: {known}",
                    UnknownGroupWarning, stacklevel=2,
                )  # fmt: skip
        return lag

    def rebalances(self, group: str) -> pd.DataFrame:
        """Every ownership change, generation by generation: durable across restarts."""
        return self.backend.rebalances(group)

    def reset_offsets(
        self, group: str, to: Any = "earliest", *, dry_run: bool = True, topics: list[str] | None = None
    ) -> pd.DataFrame:
        """Preview moving ``group``'s offsets to "earliest", "latest", a time or {tp: offset};
        ``dry_run=False`` applies it (only while the group has no active members)."""
        return self.backend.reset_offsets(group, to, dry_run=dry_run, topics=topics)

    # analytics --------------------------------------------------------------------------
    def replay(
        self,
        topic: str,
        start: Any = None,
        end: Any = None,
        partitions: Sequence[int] | None = None,
        *,
        raw: bool = False,
        headers: bool = False,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """Records of ``topic`` from ``start`` (inclusive) to ``end`` (exclusive), as pandas.

        ``start``/``end`` are offsets (int) or times (datetime, ISO string). JSON-object
        values are spread into a column per field; ``raw=True`` adds the ``value`` column.
        Rows are ordered by partition, then offset. A progress bar (tqdm.auto) follows
        replays of 500,000 records or more; ``progress`` forces it on or off.
        """
        count = self.backend.partition_count(topic)
        bounds = Bounds(partitions=_partitions(topic, partitions, count), **replay_bound("start", start),
                        **replay_bound("end", end))  # fmt: skip
        total = self.backend.estimate_rows(topic, bounds)
        show = progress if progress is not None else total >= PROGRESS_FROM_ROWS
        from tqdm.auto import tqdm  # imported here: only replays pay for it

        with tqdm(total=total, disable=not show, desc=f"replay {topic}", unit="rec") as bar:
            table = self.backend.replay_table(topic, bounds, raw=raw, headers=headers,
                                              progress=bar.update if show else None)  # fmt: skip
            if show and bar.n != bar.total:  # an estimate off (times out of order): end the bar full
                bar.total = bar.n
                bar.refresh()
        return replay_dataframe(table, raw=raw)

    def sql(self, statement: str) -> pd.DataFrame:
        """Run DuckDB SQL where every topic the statement names is a table (quote
        ``"offset"``: it is a keyword). SQL that DuckDB refuses raises
        :class:`~streamlab.errors.QueryError` with its message."""
        check_statement(statement)
        with query_errors():
            table = self.backend.sql_table(statement)
        return arrow_frame(table)

    # lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close this lab (and, on Kafka, every producer and consumer it made). Safe twice."""
        if not self._closed:
            self._closed = True
            self.backend.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dotted(config: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(k).replace("_", "."): v for k, v in (config or {}).items()}


def _partitions(topic: str, partitions: Sequence[int] | int | None, count: int) -> list[int] | None:
    if partitions is None:
        return None
    chosen: list[int] = [partitions] if isinstance(partitions, int) else list(partitions)
    for p in chosen:
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < count:
            raise UnknownPartitionError(
                f"topic {topic!r} has partitions 0..{count - 1}; there is no partition {p!r}",
                topic=topic, partition=p if isinstance(p, int) else None,
            )  # fmt: skip
    return chosen
