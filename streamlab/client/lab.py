"""``Lab``: the object ``streamlab.connect`` returns, over an embedded broker.

Within one process, connecting twice to the same directory shares one broker (a notebook
re-running its first cell must not lock itself out); the broker closes with its last Lab.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from streamlab.broker import Broker, group_admin, query, retention, topics
from streamlab.broker import offsets as offset_ops
from streamlab.client.consumer import Consumer
from streamlab.client.producer import Producer
from streamlab.client.replay_frame import replay_bound, replay_dataframe
from streamlab.client.share_consumer import ShareConsumer
from streamlab.client.timeparse import to_ms
from streamlab.client.user_sql import check_statement, query_errors

_open: dict[Path, tuple[Broker, int]] = {}
PROGRESS_FROM_ROWS = 500_000  # replays at least this large show a progress bar unless progress=False
_open_lock = threading.Lock()


def _acquire(path: Path) -> Broker:
    with _open_lock:
        broker, count = _open.get(path, (None, 0))
        if broker is None or broker.closed:
            broker, count = Broker(path), 0
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


class Lab:
    """A broker you can produce to, consume from, replay and query."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.broker = _acquire(self.path)
        self._closed = False

    def __repr__(self) -> str:
        return f"<streamlab.Lab {self.path} topics={len(self.broker.topics)}>"

    # topics -----------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1, config: Mapping[str, Any] | None = None) -> None:
        topics.create_topic(self.broker, name, partitions, config)

    def create_partitions(self, name: str, partitions: int) -> None:
        topics.create_partitions(self.broker, name, partitions)

    def alter_topic_config(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return topics.alter_config(self.broker, name, config)

    def delete_topic(self, name: str) -> None:
        topics.delete_topic(self.broker, name)

    def topics(self) -> pd.DataFrame:
        rows = topics.describe_topics(self.broker)
        return pd.DataFrame(rows, columns=["name", "partitions", "records", "bytes", "config"])

    def offsets(self, topic: str) -> pd.DataFrame:
        rows = offset_ops.log_offsets(self.broker, topic)
        return pd.DataFrame(rows, columns=["partition", "log_start_offset", "high_watermark"])

    def apply_retention(self, *, now: Any = None) -> retention.RetentionResult:
        """Delete expired segments and compact compacted topics now (also done on open and
        whenever a segment is sealed)."""
        now_ms = int(time.time() * 1000) if now is None else to_ms(now, what="now")
        return retention.apply_retention(self.broker, now_ms=now_ms)

    def roll(self, topic: str) -> None:
        """Seal every partition's active segment into Parquet now."""
        for log in self.broker.topic(topic).logs:
            log.roll()

    # clients ----------------------------------------------------------------------------
    def producer(self, **config: Any) -> Producer:
        return Producer(self.broker, **config)

    def consumer(self, topics: Iterable[str] | str | None = None, **config: Any) -> Consumer:
        return Consumer(self.broker, topics, **config)

    # share groups (queues for Kafka, KIP-932) ----------------------------------------------
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
    ) -> ShareConsumer:
        """A member of share group ``group``: records are handed out one member at a time
        under a ``lock_ms`` lock and acknowledged one by one (accept, release, reject).
        ``auto_offset_reset`` (default "latest", as in Kafka) and ``acknowledgement_mode``
        ("implicit" or "explicit") are among ``config``."""
        return ShareConsumer(self.broker, topics, group=group, lock_ms=lock_ms, dead_letter_topic=dead_letter_topic,
                             delivery_count_limit=delivery_count_limit, client_id=client_id, **config)  # fmt: skip

    def share_state(self, group: str) -> pd.DataFrame:
        """One row per in-flight record of share group ``group``: topic, partition, offset,
        state (available/acquired/acknowledged/archived), delivery_count, owner, lock_expires."""
        from streamlab.broker.share import share_state

        columns = ["topic", "partition", "offset", "state", "delivery_count", "owner", "lock_expires_ms"]
        df = pd.DataFrame(share_state(self.broker, group), columns=columns)
        df["lock_expires"] = pd.to_datetime(df.pop("lock_expires_ms").astype("Int64"), unit="ms", utc=True)
        return df

    # consumer groups ------------------------------------------------------------------
    def groups(self) -> pd.DataFrame:
        """Every group: classic consumer groups (live members or committed offsets) and share
        groups, told apart by ``type`` ("classic" or "share"). Share groups have no generation (<NA>)."""
        df = pd.DataFrame(group_admin.list_all_groups(self.broker),
                          columns=["group", "type", "state", "generation", "members", "assignor"])  # fmt: skip
        df["generation"] = df["generation"].astype("Int64")
        return df

    def describe_group(self, group: str) -> pd.DataFrame:
        return pd.DataFrame(group_admin.describe_group(self.broker, group),
                            columns=["member", "client_id", "host", "topic", "partition"])  # fmt: skip

    def lag(self, group: str) -> pd.DataFrame:
        """Per partition: committed offset, end offset, lag in records and in time."""
        df = pd.DataFrame(group_admin.lag(self.broker, group),
                          columns=["topic", "partition", "committed", "end_offset", "lag", "time_lag_ms"])  # fmt: skip
        df["time_lag"] = pd.to_timedelta(df["time_lag_ms"], unit="ms")
        return df.drop(columns="time_lag_ms")

    def rebalances(self, group: str) -> pd.DataFrame:
        """Every ownership change, generation by generation: durable across restarts."""
        columns = ["generation", "time_ms", "reason", "member", "topic", "partition", "change"]
        df = pd.DataFrame(group_admin.rebalances(self.broker, group), columns=columns)
        df.insert(1, "time", pd.to_datetime(df.pop("time_ms"), unit="ms", utc=True))
        return df

    def reset_offsets(
        self, group: str, to: Any = "earliest", *, dry_run: bool = True, topics: list[str] | None = None
    ) -> pd.DataFrame:
        """Preview moving ``group``'s offsets to "earliest", "latest", a time or {tp: offset};
        ``dry_run=False`` applies it (only while the group has no active members)."""
        rows = group_admin.reset_offsets(self.broker, group, to, dry_run=dry_run, topics=topics)
        return pd.DataFrame(rows, columns=["topic", "partition", "current", "new", "replayed", "skipped"])

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
        self.broker.topic(topic)
        bounds = query.Bounds(partitions=self._check_partitions(topic, partitions), **replay_bound("start", start),
                              **replay_bound("end", end))  # fmt: skip
        total = query.estimate_rows(self.broker, topic, bounds)
        show = progress if progress is not None else total >= PROGRESS_FROM_ROWS
        from tqdm.auto import tqdm  # imported here: only replays pay for it

        with tqdm(total=total, disable=not show, desc=f"replay {topic}", unit="rec") as bar:
            table = query.replay(self.broker, topic, bounds, raw=raw, headers=headers,
                                 progress=bar.update if show else None)  # fmt: skip
        return replay_dataframe(table, raw=raw)

    def _check_partitions(self, topic: str, partitions: Sequence[int] | None) -> list[int] | None:
        if partitions is None:
            return None
        chosen: list[int] = [partitions] if isinstance(partitions, int) else list(partitions)
        for p in chosen:
            self.broker.log(topic, p)
        return chosen

    def sql(self, statement: str) -> pd.DataFrame:
        """Run DuckDB SQL where every topic is a table (quote ``"offset"``: it is a keyword).
        SQL that DuckDB refuses raises :class:`~streamlab.errors.QueryError` with its message."""
        check_statement(statement)
        with query_errors():
            table = query.sql(self.broker, statement)
        return table.to_pandas()

    # lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self.broker)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
