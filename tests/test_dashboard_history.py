"""Lag and throughput over time in the dashboard: the history state read from the Lab's
samples, the SVG charts drawn from it, and the dashboard starting and stopping the
Lab's sampler. Without a browser: the states and the widgets' HTML."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import streamlab
from streamlab.errors import ConfigError
from streamlab.notebook.state import HistoryState
from streamlab.notebook.widgets import HistoryCharts

T0 = 1_767_571_200_000  # 2026-01-05T00:00Z


def _send(lab: streamlab.Lab, topic: str, n: int) -> None:
    with lab.producer() as p:
        for i in range(n):
            p.send(topic, value={"i": i}, key=f"k{i % 4}", timestamp=T0 + i * 1000)


def _three_samples(lab: streamlab.Lab, topic: str) -> None:
    """At 00:00:00 nothing committed, at 00:00:10 4 of 20 read, at 00:00:20 all 30."""
    _send(lab, topic, 20)
    lab.sample_history(topics=topic, groups="g", now="2026-01-05T00:00:00Z")
    with lab.consumer([topic], group="g", auto_offset_reset="earliest", enable_auto_commit=False) as c:
        got = c.poll(timeout=5, max_records=4)
        assert len(got) == 4
        c.commit()
        _send(lab, topic, 10)
        lab.sample_history(topics=topic, groups="g", now="2026-01-05T00:00:10Z")
        read = len(got)
        while read < 30:  # read up to the end, not on until a poll comes back empty after its timeout
            more = c.poll(timeout=5, max_records=100)
            assert more
            read += len(more)
            c.commit()
    lab.sample_history(topics=topic, groups="g", now="2026-01-05T00:00:20Z")


def test_history_state_reads_lag_and_rates_per_sample(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    state = HistoryState(lab, topic, "g", interval=10)
    state.refresh()
    assert state.samples == 0 and state.lag == [] and "no samples yet" in state.summary()
    _three_samples(lab, topic)
    state.refresh()
    assert state.samples == 3
    assert [s.label for s in state.lag] == ["partition 0", "partition 1"]
    times = [pd.Timestamp("2026-01-05T00:00:10Z"), pd.Timestamp("2026-01-05T00:00:20Z")]
    assert all(s.times == times for s in state.lag)  # the group had committed nothing at 00:00:00
    assert sum(s.values[0] for s in state.lag) == 26 and all(s.values[1] == 0 for s in state.lag)
    # in: 10 records appended over 10 s, then none; out: 26 committed over the last 10 s
    assert state.rate_in.times == times and state.rate_in.values == [1.0, 0.0]
    assert state.rate_out.times == times[1:] and state.rate_out.values == pytest.approx([2.6])
    assert state.summary() == (
        f"history of topic {topic} and group g, sampled every 10 s\n"
        "  records in since the first sample shown: 10\n"
        "  newest sample of the group: committed 30, lag 0 records "
        f"(partition 0: 0, partition 1: 0)"
    )
    assert len(lab.lag_history("g")) == 4  # what the state drew is what the Lab returns


def test_history_state_keeps_the_newest_window_of_samples(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    for i in range(5):
        _send(lab, topic, 1)
        lab.sample_history(topics=topic, groups="g", now=f"2026-01-05T00:00:0{i}Z")
    state = HistoryState(lab, topic, "g", window=3)
    state.refresh()
    assert state.samples == 3 and state.rate_in.times[0] == pd.Timestamp("2026-01-05T00:00:02Z")
    assert "records in since the first sample shown: 2" in state.summary()
    assert "group g has committed nothing" in state.summary()
    with pytest.raises(ConfigError):
        HistoryState(lab, topic, "g", window=1)


def test_history_charts_draw_one_line_per_partition_and_the_rates(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    charts = HistoryCharts(lab, topic, "g", autostart=False)
    assert "no samples of the group" in charts.lag_chart.value and "rates need two samples" in charts.rate_chart.value
    _three_samples(lab, topic)
    charts.refresh()
    lag_svg, rate_svg = charts.lag_chart.value, charts.rate_chart.value
    assert lag_svg.count("<polyline") == 2 and "partition 0" in lag_svg and "partition 1" in lag_svg
    assert ">00:00:10<" in lag_svg and ">00:00:20 UTC<" in lag_svg  # the time axis, in UTC
    peak = max(int(v) for v in re.findall(r">(\d+)</text>", lag_svg))
    assert peak == max(s.values[0] for s in charts.state.lag)  # the y axis is labelled with the peak
    assert rate_svg.count("<polyline") == 1 and "<circle" in rate_svg  # in: two points; out: one so far
    assert "in (appended)" in rate_svg and "out (committed)" in rate_svg
    assert repr(charts) == f"<streamlab.widgets.HistoryCharts topic={topic!r} group='g'>"


def test_dashboard_samples_history_live_and_stop_ends_the_sampling(
    lab: streamlab.Lab, make_topic: Callable[..., str], threads_end: None
) -> None:
    topic = make_topic(partitions=2)
    _send(lab, topic, 10)
    dash = streamlab.widgets.Dashboard(lab, topic, "dash", interval=0.05, history_interval=0.05)
    try:
        assert dash.sampling and dash.history in dash.parts
        dash.timeline.add_consumer("alice")
        assert dash.timeline.pool is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the charts fill while the cell does nothing
            if len(dash.history.state.lag) == 2 and len(dash.history.state.lag[0].times) >= 2:
                break
            time.sleep(0.05)
        assert len(dash.history.state.lag[0].times) >= 2
        dash.refresh()  # the ticker may be between reading and drawing
        assert "<polyline" in dash.history.lag_chart.value
        assert f"history of topic {topic} and group dash, sampled every 0.05 s" in dash.summary()
    finally:
        dash.stop()
    assert not dash.sampling
    taken = len(lab.lag_history("dash"))
    time.sleep(0.3)
    assert len(lab.lag_history("dash")) == taken  # no more samples after stop()


def test_dashboard_without_sampling_charts_what_the_lab_records(
    lab: streamlab.Lab, make_topic: Callable[..., str], threads_end: None
) -> None:
    topic = make_topic(partitions=2)
    _three_samples(lab, topic)
    with pytest.raises(ConfigError):
        streamlab.widgets.Dashboard(lab, topic, "g", history_interval=0)
    dash = streamlab.widgets.Dashboard(lab, topic, "g", history_interval=None, autostart=False)
    assert not dash.sampling
    assert "newest sample of the group: committed 30, lag 0 records" in dash.summary()
    dash.start()
    assert not dash.sampling  # history_interval=None: the Lab's sampler is not touched
    dash.stop()
    assert len(lab.lag_history("g")) == 4


def test_a_dashboard_on_a_closed_lab_says_so_and_samples_nothing(tmp_path: Path, threads_end: None) -> None:
    lab = streamlab.connect(tmp_path / "lab")
    lab.create_topic("t")
    lab.close()
    dash = streamlab.widgets.Dashboard(lab, "t", "g", interval=0.05, history_interval=0.05)
    try:
        assert not dash.sampling
        assert "ClosedError" in dash.status.value and "lab.close() ran" in dash.status.value
    finally:
        dash.stop()
