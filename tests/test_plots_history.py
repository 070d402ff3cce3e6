"""streamlab.plot.lag_history and throughput_history draw what lab's history frames hold."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

import streamlab
from streamlab import TopicPartition
from streamlab.notebook import plot

T0 = pd.Timestamp("2026-01-05T00:00:00Z")


def _labelled(fig: Figure) -> None:
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), ax
        legend = ax.get_legend()
        assert legend is not None and [t.get_text() for t in legend.get_texts()], ax
    fig.canvas.draw()  # renders without error


def test_history_plots_draw_lag_and_rates(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t", partitions=2)
        with lab.consumer(group="g", enable_auto_commit=False) as c:
            c.assign([TopicPartition("t", 0), TopicPartition("t", 1)])
            for step in range(3):
                with lab.producer() as p:
                    for i in range(10):
                        p.send("t", value=i, partition=i % 2)
                c.commit({TopicPartition("t", 0): 4 * step, TopicPartition("t", 1): 5 * step})
                lab.sample_history(now=T0 + pd.Timedelta(seconds=5 * step))
        lag = plot.lag_history(lab.lag_history("g"))
        _labelled(lag)
        assert [t.get_text() for t in lag.axes[0].get_legend().get_texts()] == ["partition 0", "partition 1"]
        assert list(lag.axes[0].lines[0].get_ydata()) == [5, 6, 7]
        assert plot.summary_of(lag).startswith(
            "3 samples from 2026-01-05 00:00:00 to 00:00:10 UTC; lag now 12 records (max 12)"
        )
        flow = plot.throughput_history(lab.throughput_history("t", group="g"), summary=True)
        _labelled(flow)
        labels = [t.get_text() for t in flow.axes[0].get_legend().get_texts()]
        assert labels == ["in, partition 0", "in, partition 1", "in, all partitions", "out (committed), all partitions"]
        assert (
            plot.summary_of(flow) == "2 intervals; in: mean 2.0, peak 2.0 records/s; out: mean 1.8, peak 1.8 records/s"
        )
        empty = plot.throughput_history(lab.throughput_history("t").head(2))
        _labelled(empty)
        assert plot.summary_of(empty) == "fewer than two samples: no rates yet"
