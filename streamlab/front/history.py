"""History: end offsets, committed offsets, lag and throughput over time, for every backend.

A *sample* reads, at one instant, each watched topic's partition offsets
(``offset_rows``) and each watched group's lag (``lag``), and hands them to the backend's
history store (the catalog of an embedded lab, memory for ``kafka://``). Sampling runs
either once, when asked (``lab.sample_history()``), or on a daemon thread every
``interval`` seconds (``lab.start_history()``) until ``lab.stop_history()`` or
``lab.close()``. A thread, not sampling piggy-backed on other calls: a chart of lag over
time needs samples at a steady pace while the notebook waits or does something else, and
``start_history`` returns at once, so no cell blocks on it.

Rates are computed when history is read: records/s in is the growth of a partition's end
offset between two samples, records/s out the growth of a group's committed offset.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from streamlab.errors import (
    ClosedError,
    ConfigError,
    GroupIdNotFoundError,
    StreamlabError,
    UnknownTopicError,
    UnsupportedOperationError,
)
from streamlab.port.backend import Backend
from streamlab.port.history import GroupSample, PartitionSample

log = logging.getLogger("streamlab.history")
STOP_WAIT = 5.0  # seconds close() waits for a sample in flight


class History:
    """A lab's history sampler. ``clock`` (seconds since the epoch) is the time samples get."""

    def __init__(self, backend: Backend, *, clock: Callable[[], float] = time.time) -> None:
        self._backend = backend
        self._clock = clock
        self._lock = threading.Lock()  # one sample at a time: thread and notebook never interleave
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval: float | None = None
        self.last_error: StreamlabError | None = None  # the background thread's latest failure

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # sampling ---------------------------------------------------------------------------
    def sample(self, *, topics: Sequence[str] | None = None, groups: Sequence[str] | None = None,
               now_ms: int | None = None) -> None:  # fmt: skip
        """Take one sample now: every topic and group unless ``topics``/``groups`` name them."""
        with self._lock:
            time_ms = int(self._clock() * 1000) if now_ms is None else now_ms
            partitions = self._partitions(topics)
            members = self._groups(groups)
            self._backend.history().add(time_ms, partitions, members)

    def _partitions(self, topics: Sequence[str] | None) -> list[PartitionSample]:
        named = topics is not None
        chosen = list(topics) if topics is not None else [str(r["name"]) for r in self._backend.topic_rows()]
        rows: list[PartitionSample] = []
        for topic in chosen:
            try:
                rows += [(topic, int(p), int(low), int(high)) for p, low, high in self._backend.offset_rows(topic)]
            except UnknownTopicError:
                if named:
                    raise
                # deleted since it was listed: nothing to sample
        return rows

    def _groups(self, groups: Sequence[str] | None) -> list[GroupSample]:
        named = groups is not None
        if groups is None:
            try:
                listed = self._backend.groups()
            except UnsupportedOperationError:  # librdkafka's mock cluster cannot list groups
                return []
            groups = sorted(
                {str(g) for g, kind in zip(listed["group"], listed["type"], strict=True) if kind != "share"}
            )
        rows: list[GroupSample] = []
        for group in groups:
            try:
                lag = self._backend.lag(group)
            except StreamlabError:
                if named:
                    raise
                continue  # gone since it was listed, or its offsets name a deleted topic
            for topic, p, committed, end, behind, time_lag in lag[
                ["topic", "partition", "committed", "end_offset", "lag", "time_lag"]
            ].itertuples(index=False):
                lag_ms = 0 if pd.isna(time_lag) else int(time_lag / pd.Timedelta(milliseconds=1))
                rows.append((group, str(topic), int(p), int(committed), int(end), int(behind), lag_ms))
        return rows

    # the background thread --------------------------------------------------------------
    def start(self, interval: float, *, topics: Sequence[str] | None, groups: Sequence[str] | None) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise ConfigError(f"interval must be a number of seconds > 0, got {interval!r}")
        for topic in topics or ():
            self._backend.partition_count(topic)  # an unknown topic fails here, not silently in the thread
        self.stop()
        self._stop = threading.Event()
        self.interval = float(interval)
        self._thread = threading.Thread(target=self._run, args=(float(interval), topics, groups, self._stop),
                                        name="streamlab-history", daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self, interval: float, topics: Sequence[str] | None, groups: Sequence[str] | None,
             stop: threading.Event) -> None:  # fmt: skip
        while not stop.is_set():
            try:
                self.sample(topics=topics, groups=groups)
                self.last_error = None
            except ClosedError:
                return
            except StreamlabError as exc:  # a broker away for a moment: keep sampling
                self.last_error = exc
                log.warning("history sample failed: %s", exc)
            except Exception:
                if stop.is_set():  # the lab closed under a sample still in flight
                    return
                raise
            stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)
            self._thread = None
        self.interval = None

    # reading ----------------------------------------------------------------------------
    def lag_history(self, group: str) -> pd.DataFrame:
        rows = self._backend.history().group_rows(group)
        if not rows:
            raise GroupIdNotFoundError(f"no history of group {group!r}; {self._hint()}")
        df = pd.DataFrame(rows, columns=["time_ms", "topic", "partition", "committed", "end_offset", "lag",
                                         "time_lag_ms"])  # fmt: skip
        df["out_per_s"] = _rate(df, ["topic", "partition"], "committed")
        df["time"] = pd.to_datetime(df["time_ms"], unit="ms", utc=True)
        df["time_lag"] = pd.to_timedelta(df["time_lag_ms"], unit="ms")
        return df[["time", "topic", "partition", "committed", "end_offset", "lag", "time_lag", "out_per_s"]]

    def throughput_history(self, topic: str, group: str | None) -> pd.DataFrame:
        rows = self._backend.history().partition_rows(topic)
        if not rows:
            raise UnknownTopicError(f"no history of topic {topic!r}; {self._hint()}", topic=topic)
        df = pd.DataFrame(rows, columns=["time_ms", "partition", "log_start_offset", "end_offset"])
        df["in_per_s"] = _rate(df, ["partition"], "end_offset")
        if group is not None:
            consumed = self.lag_history(group)
            consumed = consumed[consumed["topic"] == topic]
            if consumed.empty:
                raise GroupIdNotFoundError(f"group {group!r} has no history on topic {topic!r}; {self._hint()}")
            consumed = consumed.assign(time_ms=_ms(consumed["time"]))[["time_ms", "partition", "committed", "lag",
                                                                        "out_per_s"]]  # fmt: skip
            df = df.merge(consumed, on=["time_ms", "partition"], how="left")
        df.insert(0, "time", pd.to_datetime(df.pop("time_ms"), unit="ms", utc=True))
        return df

    def _hint(self) -> str:
        topics, groups = self._backend.history().names()
        has = f"history holds topics {topics} and groups {groups}" if topics or groups else "no history yet"
        return has + "; lab.start_history() samples every few seconds, lab.sample_history() once now"


def _ms(times: Any) -> Any:
    return (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def _rate(df: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    """Growth of ``column`` per second since the previous sample of the same ``keys``
    (NaN for a first sample, or when it shrank: a topic deleted and made again, a reset)."""
    by = df.groupby(keys, sort=False)
    seconds = by["time_ms"].diff() / 1000
    grown = by[column].diff()
    rate = grown / seconds
    return rate.where((seconds > 0) & (grown >= 0))


def check_names(what: str, names: Iterable[str] | str | None) -> list[str] | None:
    """``topics=``/``groups=`` as a list (a single name is accepted)."""
    if names is None:
        return None
    chosen = [names] if isinstance(names, str) else list(names)
    for name in chosen:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{what} must be names (str), got {name!r}")
    return chosen
