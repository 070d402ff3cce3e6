"""What the streaming-job views show: :class:`JobViewState` (a job's numbers over time),
:class:`LatestTableState` (a topic read as it grows, the latest row per key) and
:class:`WindowSeriesState` (that table as lines over time, e.g. revenue per window per
page, the newest window of each line still filling).

The topic is read incrementally by a consumer without a group, assigned every partition
from its log start: each refresh reads only what was appended since the last one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from streamlab.errors import ConfigError, UnknownTopicError
from streamlab.front.job_metrics import JobMetrics
from streamlab.front.jobs import Job
from streamlab.front.lab import Lab
from streamlab.model.types import TopicPartition
from streamlab.notebook.state_helpers import num

__all__ = ["JobViewState", "LatestTableState", "TimeUnit", "WindowSeriesState"]

TimeUnit = Literal["s", "ms", "us", "ns"]


class JobViewState:
    """A job's :class:`~streamlab.front.job_metrics.JobMetrics`, read again on every refresh."""

    def __init__(self, job: Job) -> None:
        if not isinstance(job, Job):
            raise ConfigError(f"JobView shows what lab.start_job() returned, got {job!r}")
        self.job = job
        self.lab = job._lab  # the widget's closed-lab check reads it
        self.metrics: JobMetrics | None = None

    def refresh(self) -> None:
        self.metrics = self.job.metrics()

    def summary(self) -> str:
        if self.metrics is None:
            self.refresh()
        assert self.metrics is not None
        return self.metrics.summary()


def _columns(key: str | Sequence[str]) -> list[str]:
    columns = [key] if isinstance(key, str) else list(key)
    if not columns or not all(isinstance(c, str) and c for c in columns):
        raise ConfigError(f"key must be a column name or a list of them, got {key!r}")
    return columns


def _text_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Keys other clients wrote as bytes (Quix Streams does) as text, as
    ``replay(key_format="string")`` shows them: a table's keys are read by people."""
    if "key" in frame.columns and frame["key"].map(lambda k: isinstance(k, bytes)).any():
        text = [k.decode("utf-8", errors="replace") if isinstance(k, bytes) else k for k in frame["key"]]
        frame = frame.assign(key=pd.Series(text, index=frame.index, dtype=object))  # replay's dtype for keys
    return frame


class LatestTableState:
    """``topic`` as a table: the latest record for each value of the ``key`` columns (the
    record key, or fields of the value such as a window's ``start``), in the columns
    ``poll_frame`` (and ``replay``) give, read incrementally from every partition's start.
    ``times`` names columns of epoch times in ``time_unit`` (Quix Streams' window ``start`` and
    ``end`` are milliseconds) shown as UTC times."""

    def __init__(
        self, lab: Lab, topic: str, *, key: str | Sequence[str] = "key", times: Sequence[str] = (),
        time_unit: TimeUnit = "ms", poll_timeout: float = 0.2,
    ) -> None:  # fmt: skip
        if not isinstance(topic, str) or not topic:
            raise ConfigError(f"topic must be a topic name, got {topic!r}")
        self.lab, self.topic, self.key = lab, topic, _columns(key)
        self.times, self.time_unit = ([] if not times else _columns(times)), time_unit
        self.poll_timeout = poll_timeout
        self.read = 0  # records read since the first refresh
        self.positions: dict[int, int] = {}  # partition -> next offset to read
        self.waiting = ""  # why nothing can be read yet
        self._latest = pd.DataFrame()
        self._consumer: Any = None
        self._lock = threading.Lock()

    def refresh(self, *, max_records: int = 100_000) -> None:
        """Read what was appended since the last refresh (at most ``max_records``)."""
        with self._lock:
            try:
                offsets = self.lab.offsets(self.topic)
            except UnknownTopicError:
                self.waiting = f"no topic {self.topic} yet"
                return
            self.waiting = ""
            starts = {int(p): int(s) for p, s in zip(offsets["partition"], offsets["log_start_offset"], strict=True)}
            if self._consumer is None or set(starts) != set(self.positions):
                self._open(starts)
            wait, read = self.poll_timeout, 0  # a Kafka client fetches in the background: a moment first
            while read < max_records:
                frame = self._consumer.poll_frame(timeout=wait, max_records=5000)
                wait = 0
                if frame.empty:
                    break
                read += len(frame)
                self._take(frame)
            self.read += read

    def _open(self, starts: dict[int, int]) -> None:
        if self._consumer is not None:
            self._consumer.close()
        self._consumer = self.lab.consumer(None, enable_auto_commit=False, auto_offset_reset="earliest",
                                           client_id="streamlab-live-table")  # fmt: skip
        tps = [TopicPartition(self.topic, p) for p in sorted(starts)]
        self._consumer.assign(tps)
        for tp in tps:
            self._consumer.seek(tp, starts[tp.partition])
        self.positions, self._latest, self.read = dict(starts), pd.DataFrame(), 0

    def _take(self, frame: pd.DataFrame) -> None:
        frame = _text_keys(frame.drop(columns=["topic"]))
        missing = [c for c in self.key if c not in frame.columns]
        if missing:
            raise ConfigError(f"{self.topic} has no column {missing[0]!r} to key the table by; "
                              f"its columns: {list(frame.columns)}")  # fmt: skip
        newest = frame.groupby("partition")["offset"].max()
        self.positions |= {int(p): int(o) + 1 for p, o in zip(newest.index, newest, strict=True)}
        both = frame if self._latest.empty else pd.concat([self._latest, frame], ignore_index=True)
        # a key's records are in one partition, read in offset order: the last one is the latest
        self._latest = both.drop_duplicates(subset=self.key, keep="last").reset_index(drop=True)

    def to_dataframe(self) -> pd.DataFrame:
        """The table now: one row per key, sorted by the key columns."""
        with self._lock:
            latest = self._latest.copy()
        if latest.empty:
            return latest
        latest = latest.sort_values(self.key, kind="stable").reset_index(drop=True)
        for column in self.times:
            if column in latest.columns:
                latest[column] = pd.to_datetime(latest[column], unit=self.time_unit, utc=True)
        return latest

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    def summary(self, *, rows: int = 10, columns: Sequence[str] | None = None) -> str:
        table = self.to_dataframe()
        head = (f"live table of {self.topic}: {num(len(table))} key(s) by {', '.join(self.key)}, "
                f"from {num(self.read)} record(s) read")  # fmt: skip
        if self.waiting:
            return f"{head} ({self.waiting})"
        if table.empty:
            return head
        shown = table[list(columns)] if columns else table.drop(columns=["partition", "offset", "timestamp"])
        more = f"\n  ... {num(len(table) - rows)} more" if len(table) > rows else ""
        text = shown.head(rows).to_string(index=False)
        return head + "\n" + "\n".join(f"  {line}" for line in text.splitlines()) + more


class WindowSeriesState:
    """A windowed aggregation's output as lines: ``y`` per ``x`` (a window's start) for each
    value of ``by`` (the key), the latest value of each window (a window rewritten as it
    fills shows its newest sum). ``time_unit`` turns numeric ``x`` (epoch milliseconds, as
    Quix Streams writes window bounds) into UTC times; None keeps the numbers."""

    def __init__(
        self, lab: Lab, topic: str, *, x: str = "start", y: str = "value.value", by: str = "key",
        time_unit: TimeUnit | None = "ms",
    ) -> None:  # fmt: skip
        for name, value in (("x", x), ("y", y), ("by", by)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name} must be a column name, got {value!r}")
        self.x, self.y, self.by, self.time_unit = x, y, by, time_unit
        self.table = LatestTableState(lab, topic, key=[by, x])
        self.lab, self.topic = lab, topic

    def refresh(self) -> None:
        self.table.refresh()

    def to_dataframe(self) -> pd.DataFrame:
        """Columns ``by``, ``x``, ``y`` and ``current`` (True for the newest window of each
        line: the one still filling while events arrive in time order), sorted by ``by``
        and ``x``."""
        table = self.table.to_dataframe()
        if table.empty:
            return pd.DataFrame({self.by: [], self.x: [], self.y: [], "current": []})
        if self.y not in table.columns:
            raise ConfigError(f"{self.topic} has no column {self.y!r} to plot; its columns: {list(table.columns)}")
        data = table[[self.by, self.x, self.y]].copy()
        if self.time_unit is not None:
            data[self.x] = pd.to_datetime(data[self.x], unit=self.time_unit, utc=True)
        data = data.sort_values([self.by, self.x], kind="stable").reset_index(drop=True)
        data["current"] = data[self.x] == data.groupby(self.by)[self.x].transform("max")
        return data

    def close(self) -> None:
        self.table.close()

    def summary(self) -> str:
        data = self.to_dataframe()
        head = f"{self.y} per {self.x} by {self.by} from {self.topic}"
        if self.table.waiting:
            return f"{head}: {self.table.waiting}"
        if data.empty:
            return f"{head}: no records yet"
        lines = [f"{head}: {len(data)} window(s) of {data[self.by].nunique()} line(s)"]
        for name, rows in data.groupby(self.by, sort=True):
            newest = rows.iloc[-1]
            lines.append(f"  {name}: {len(rows)} window(s), total {_number(rows[self.y].sum())}, "
                         f"newest {newest[self.x]} = {_number(newest[self.y])}")  # fmt: skip
        return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{float(value):,.2f}"
