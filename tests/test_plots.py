"""streamlab.plot: every figure has a title, labelled axes and a legend, and says what it drew."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from matplotlib.figure import Figure

import streamlab
from streamlab import TopicPartition
from streamlab.notebook import plot
from streamlab.notebook.state import ConsumerPool, LagState

T0 = 1_767_571_200_000  # 2026-01-05T00:00Z


def _labelled(fig: Figure) -> None:
    assert fig.axes
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), ax
        legend = ax.get_legend()
        assert legend is not None and [t.get_text() for t in legend.get_texts()], ax
    fig.canvas.draw()  # renders without error


def _legend(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


class LabWithoutHistory:
    def __init__(self, lab: streamlab.Lab) -> None:
        self._lab = lab

    def __getattr__(self, name: str) -> Any:
        if name == "rebalances":
            raise AttributeError(name)
        return getattr(self._lab, name)


def test_lazy_attribute() -> None:
    assert streamlab.plot is plot
    with pytest.raises(AttributeError):
        _ = streamlab.nothing_here  # type: ignore[attr-defined]


def test_records_per_partition_shows_key_skew(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    with lab.producer() as p:
        for i in range(30):
            p.send(topic, value=i, key="hot" if i < 20 else f"cold{i % 3}", timestamp=T0 + i)
    counts = lab.offsets(topic)["high_watermark"].tolist()
    hot = lab.replay(topic).query("key == 'hot'")["partition"].iloc[0]
    fig = plot.records_per_partition(lab, topic, top=3)
    _labelled(fig)
    left, right = fig.axes
    assert [round(b.get_height()) for b in left.patches] == counts
    assert [t.get_text() for t in right.get_yticklabels()][-1] == "hot"  # the busiest key on top
    text = plot.summary_of(fig).splitlines()
    assert text[0] == f"30 records in 2 partition(s) of {topic}"
    assert text[1] == f"  partition 0: {counts[0]} ({100 * counts[0] / 30:.1f}%)"
    assert text[-1].startswith(f"  4 distinct keys; busiest: hot (partition {hot}) 20, ")


def test_throughput_counts_records_per_bucket(lab: streamlab.Lab, make_topic: Callable[..., str], capsys: Any) -> None:
    topic = make_topic(partitions=2)
    with lab.producer() as p:
        for i in range(90):  # 60 in the first minute, 30 in the second
            p.send(topic, value=i, key=f"k{i}", timestamp=T0 + (i * 1000 if i < 60 else 60_000 + (i - 60) * 2000))
    fig = plot.throughput(lab, topic, "1min", summary=True)
    _labelled(fig)
    (ax,) = fig.axes
    assert _legend(ax) == ["partition 0", "partition 1", "all partitions"]
    assert list(ax.get_lines()[-1].get_ydata()) == [60, 30]
    printed = capsys.readouterr().out.strip()
    assert (
        printed
        == plot.summary_of(fig)
        == (
            f"90 records of {topic} from 2026-01-05 00:00 to 2026-01-05 00:01 UTC in 2 buckets of 1min; "
            "peak 60 at 2026-01-05 00:00, mean 45.0 per 1min"
        )
    )


def test_offsets_and_lag_draws_removed_consumed_and_lag(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    with lab.producer() as p:
        for i in range(10):
            p.send(topic, value=i, partition=0, timestamp=T0 + i * 1000)
            p.send(topic, value=i, partition=1, timestamp=T0 + i * 1000)
    consumer = lab.consumer(None, group="g", enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.commit({TopicPartition(topic, 0): 7})
    consumer.close()
    fig = plot.offsets_and_lag(lab, topic, "g")
    _labelled(fig)
    (ax,) = fig.axes
    assert _legend(ax) == ["removed by retention", "consumed (committed)", "lag"]
    widths = [(round(b.get_x()), round(b.get_width())) for b in ax.patches]
    assert widths == [(0, 0), (0, 0), (0, 7), (0, 0), (7, 3), (0, 10)]  # per series: partition 0, then 1
    state = LagState(lab, topic, "g")
    state.refresh()
    assert plot.summary_of(fig) == state.summary()
    state.refresh()
    with_history = plot.offsets_and_lag(lab, topic, "g", history=state)
    _labelled(with_history)
    assert len(with_history.axes) == 2 and _legend(with_history.axes[1]) == ["partition 0", "partition 1"]


def test_rebalance_timeline_is_a_gantt_of_ownership(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    pool = ConsumerPool(lab, topic, "gantt")
    pool.add("ann")
    assert pool.settle()
    pool.add("bo")
    assert pool.settle()
    pool.stop("ann")
    assert pool.settle()
    pool.close()
    fig = plot.rebalance_timeline(lab, "gantt", summary=False)
    _labelled(fig)
    (ax,) = fig.axes
    assert _legend(ax) == ["ann", "bo", "revoked"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["partition 0", "partition 1", "partition 2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    text = plot.summary_of(fig)
    assert "  generation 1: member ann joined -> ann: 0, 1, 2 (0 revoked, 3 assigned)" in text
    assert "  generation 2: member bo joined -> ann: 0, 1; bo: 2 (1 revoked, 1 assigned)" in text
    assert "  generation 3: member ann left the group -> bo: 0, 1, 2 (2 revoked, 2 assigned)" in text
    assert "  generation 4: member bo left the group -> no owners (3 revoked, 0 assigned)" in text


def test_plots_degrade_without_history_or_records(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    fig = plot.rebalance_timeline(LabWithoutHistory(lab), "g")
    _labelled(fig)
    assert "embedded broker only" in plot.summary_of(fig)
    empty = plot.throughput(lab, topic)
    _labelled(empty)
    assert plot.summary_of(empty) == f"no records in {topic}"
    skew = plot.records_per_partition(lab, topic)
    _labelled(skew)
    assert plot.summary_of(skew).splitlines()[-1] == "  no keyed records"
