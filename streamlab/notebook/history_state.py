"""What the history charts show: :class:`HistoryState`, one topic and one group's lag and
throughput over time, read from the Lab's history (``lab.lag_history``,
``lab.throughput_history``).

The state only reads samples; taking them is the Lab's sampler's job
(``lab.start_history``, started by the :class:`~streamlab.notebook.dashboard.Dashboard`),
so a chart drawn from it shows the same points ``lab.lag_history`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from streamlab.errors import ConfigError, GroupIdNotFoundError, UnknownTopicError
from streamlab.front.lab import Lab
from streamlab.notebook.state_helpers import num

__all__ = ["HistoryState", "Series"]


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: a label and its points (UTC times, values)."""

    label: str
    times: list[pd.Timestamp] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


class HistoryState:
    """Lag over time per partition of ``topic`` for ``group``, and records/s in (appended
    to ``topic``) and out (committed by ``group``) over time, for the newest ``window``
    samples. ``interval`` is what the summary says the samples are taken every (None: by
    whoever started the Lab's sampler, or by hand)."""

    def __init__(self, lab: Lab, topic: str, group: str, *, window: int = 150, interval: float | None = None) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ConfigError(f"window must be a number of samples >= 2, got {window!r}")
        self.lab, self.topic, self.group = lab, topic, group
        self.window, self.interval = window, interval
        self.lag: list[Series] = []  # one per partition
        self.rate_in = Series("in (appended)")
        self.rate_out = Series("out (committed)")
        self.samples = 0  # samples of the topic in the window
        self.newest_lag: dict[int, int] = {}  # partition -> lag at the newest sample of the group
        self.first_end: int | None = None  # the topic's end offsets summed, at the first sample kept
        self.newest_end: int | None = None  # ... and at the newest
        self.newest_committed: int | None = None  # the group's committed offsets summed, at its newest sample

    def refresh(self) -> None:
        try:
            topic = self.lab.throughput_history(self.topic)
        except UnknownTopicError:  # no sample of it yet
            topic = pd.DataFrame(columns=["time", "partition", "end_offset", "in_per_s"])
        try:
            group = self.lab.lag_history(self.group)
        except GroupIdNotFoundError:  # no sample of it yet: nobody committed
            group = pd.DataFrame(columns=["time", "topic", "partition", "committed", "lag", "out_per_s"])
        group = group[group["topic"] == self.topic]
        times = sorted(set(topic["time"]))[-self.window :]
        topic = topic[topic["time"].isin(times)]
        group = group[group["time"] >= times[0]] if times else group.iloc[0:0]
        self.samples = len(times)
        self.lag = [Series(f"partition {p}", list(rows["time"]), [float(v) for v in rows["lag"]])
                    for p in sorted({int(v) for v in group["partition"]})
                    for rows in [group[group["partition"] == p]]]  # fmt: skip
        self.rate_in = _total("in (appended)", topic, "in_per_s")
        self.rate_out = _total("out (committed)", group, "out_per_s")
        ends = topic.groupby("time")["end_offset"].sum()
        self.first_end = int(ends.iloc[0]) if len(ends) else None
        self.newest_end = int(ends.iloc[-1]) if len(ends) else None
        newest = group[group["time"] == group["time"].max()] if len(group) else group
        self.newest_lag = {int(p): int(v) for p, v in zip(newest["partition"], newest["lag"], strict=True)}
        self.newest_committed = int(newest["committed"].sum()) if len(newest) else None

    def summary(self) -> str:
        every = "" if self.interval is None else f", sampled every {self.interval:g} s"
        lines = [f"history of topic {self.topic} and group {self.group}{every}"]
        if self.newest_end is None or self.first_end is None:
            lines.append("  no samples yet (lab.start_history() samples in the background, lab.sample_history() now)")
            return "\n".join(lines)
        lines.append(f"  records in since the first sample shown: {num(self.newest_end - self.first_end)}")
        if self.newest_committed is None:
            lines.append(f"  group {self.group} has committed nothing on {self.topic} in these samples")
        else:
            per = ", ".join(f"partition {p}: {num(v)}" for p, v in sorted(self.newest_lag.items()))
            lines.append(f"  newest sample of the group: committed {num(self.newest_committed)}, "
                         f"lag {num(sum(self.newest_lag.values()))} records ({per})")  # fmt: skip
        return "\n".join(lines)


def _total(label: str, df: pd.DataFrame, column: str) -> Series:
    """The sum over partitions of a per-partition rate, per sample time (first samples,
    which have no rate yet, left out)."""
    rated = df.dropna(subset=[column])
    if rated.empty:
        return Series(label)
    total = rated.groupby("time", sort=True)[column].sum()
    return Series(label, list(total.index), [float(v) for v in total])
