"""A Quix Streams job watched from the notebook: job.metrics() (and JobView) agree with
what lag and replay say, a deliberately late click is counted as a late record dropped,
the LiveTable of its output holds the latest value per window as replay does, and the
LivePlot's data are the sums pandas computes from the input (the late click left out).

Quix runs in its own environment (tests/test_quix_job.py says how it is found)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_quix_job import quix_python

import streamlab
from streamlab.front.job_metrics import directory_bytes
from streamlab.notebook.widgets import JobView, LivePlot, LiveTable

pytestmark = pytest.mark.slow

APP = Path(__file__).parent / "quix_apps" / "revenue_windows.py"
START = pd.Timestamp("2026-03-01T09:00:00Z")
FIVE_MIN_MS = 5 * 60 * 1000


def produce_clicks(lab: streamlab.Lab) -> int:
    """400 clicks over 40 minutes on four pages, then one click on "home" from the first
    minute: its window closed long ago (no grace), so Quix skips it."""
    lab.create_topic("clicks", partitions=3)
    lab.create_topic("revenue", partitions=3)
    rng = np.random.default_rng(7)
    pages = ["home", "cart", "search", "checkout"]
    frame = pd.DataFrame({
        "page": [pages[i % 4] for i in range(400)],
        "cents": rng.integers(1, 500, 400),
        "late": False,
        "ts": [START + pd.Timedelta(seconds=6 * i) for i in range(400)],
    })  # fmt: skip
    with lab.producer() as producer:
        producer.send_many("clicks", frame, key="page", timestamp="ts", progress=False)
        producer.send("clicks", {"page": "home", "cents": 100_000, "late": True}, key="home",
                      timestamp=START + pd.Timedelta(minutes=1))  # fmt: skip
        producer.flush(timeout=30)
    return len(frame) + 1


def test_job_metrics_views_and_late_records_of_a_quix_job(tmp_path: Path) -> None:
    python = quix_python()
    with streamlab.connect(tmp_path / "lab") as lab:
        total = produce_clicks(lab)
        job = lab.start_job(APP, python=python, group="revenue", outputs="revenue", state_dir=tmp_path / "state",
                            env={"IDLE_TIMEOUT": "2"}, timeout=120)  # fmt: skip
        view = JobView(job, autostart=False)
        table = LiveTable(lab, "revenue", key=["key", "start"], autostart=False)
        plot = LivePlot(lab, "revenue", unit="cents", autostart=False)
        try:
            while job.running:  # the views read the output as it grows
                for widget in (view, table, plot):
                    widget.refresh()
            done = job.wait(timeout=60)
            assert (done.returncode, done.ended_by) == (0, "itself"), str(done)
            for widget in (view, table, plot):
                widget.refresh()

            metrics = job.metrics()
            lag = job.lag()
            out = lab.replay("revenue", key_format="string")
            assert metrics.consumed == total == int(lag["committed"].sum())
            assert metrics.total_lag == 0 and (lag["lag"] == 0).all()
            assert metrics.emitted == len(out) == total - 1  # .current(): one update per click in time
            assert metrics.late_records == 1
            assert metrics.state_bytes == directory_bytes(tmp_path / "state") and metrics.state_bytes > 0
            assert metrics.errors == () and not metrics.failed
            text = view.summary()
            assert f"in: {total:,} records committed by group revenue\n" in text
            assert f"out: {total - 1:,} records written to revenue\n" in text and "late records dropped: 1" in text

            latest = out.sort_values(["partition", "offset"]).drop_duplicates(["key", "start"], keep="last")
            latest = latest.sort_values(["key", "start"]).reset_index(drop=True)
            pd.testing.assert_frame_equal(table.to_dataframe(), latest)

            clicks = lab.replay("clicks")
            on_time = clicks[~clicks["late"]]
            ms = (on_time["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
            start = pd.to_datetime(ms - ms % FIVE_MIN_MS, unit="ms", utc=True)
            sums = on_time.assign(start=start).groupby(["key", "start"])["cents"].sum()
            assert len(sums) == 8 * 4  # 40 minutes of four pages
            drawn = plot.to_dataframe().set_index(["key", "start"])["value.value"]
            pd.testing.assert_series_equal(drawn, sums, check_names=False, check_dtype=False, check_index_type=False)
            assert plot.to_dataframe().groupby("key")["current"].sum().eq(1).all()
        finally:
            for widget in (view, table, plot):
                widget.stop()
