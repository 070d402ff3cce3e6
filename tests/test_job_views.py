"""The streaming-job views without Quix: job.metrics() and streamlab.widgets.JobView over a
small confluent-kafka job run by this interpreter (records in and out, lag, state bytes,
errors, a failed exit), and LiveTable / LivePlot reading a topic as it grows (the latest
value per key equal to what replay says). The Quix Streams job with a real late record is
tests/test_quix_job_views.py."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from helpers import wait_until

import streamlab
from streamlab.errors import ConfigError
from streamlab.front.jobs import JOBS_PYTHON_ENV
from streamlab.notebook.plot import summary_of, windows
from streamlab.notebook.widgets import JobView, LivePlot, LiveTable

# Reads every record of argv[1], commits, writes one record per record read to argv[2]
# and a file into its state directory; then fails, or waits to be stopped.
COPIER = """
import os, sys, time
from confluent_kafka import Consumer, Producer
source, sink, fail = sys.argv[1], sys.argv[2], sys.argv[3] == "fail"
consumer = Consumer({"bootstrap.servers": os.environ["STREAMLAB_BROKER"], "group.id": os.environ["STREAMLAB_GROUP"],
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
producer = Producer({"bootstrap.servers": os.environ["STREAMLAB_BROKER"]})
consumer.subscribe([source])
state = os.path.join(os.environ["STREAMLAB_JOB_STATE_DIR"], "store")
os.makedirs(state, exist_ok=True)
read = 0
while read < int(sys.argv[4]):
    message = consumer.poll(0.5)
    if message is not None and message.error() is None:
        producer.produce(sink, key=message.key(), value=message.value())
        assert producer.flush(10) == 0
        consumer.commit(message, asynchronous=False)
        read += 1
with open(os.path.join(state, "data"), "wb") as f:
    f.write(b"x" * 1000)
print("copied", read, flush=True)
if fail:
    raise RuntimeError("the sink rejected a record")
time.sleep(600)
"""


@pytest.fixture
def copier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(JOBS_PYTHON_ENV, sys.executable)
    path = tmp_path / "copier.py"
    path.write_text(textwrap.dedent(COPIER))
    return path


def produce(lab: streamlab.Lab, topic: str, n: int) -> None:
    with lab.producer() as producer:
        for i in range(n):
            producer.send(topic, {"i": i}, key=f"k{i % 7}")


@pytest.mark.integration  # a job subprocess against lab.serve()
def test_metrics_and_job_view_follow_a_running_job(lab: streamlab.Lab, copier: Path, tmp_path: Path) -> None:
    lab.create_topic("in", partitions=3)
    lab.create_topic("out", partitions=2)
    produce(lab, "out", 5)  # already there before the job: not the job's output
    produce(lab, "in", 60)
    job = lab.start_job(copier, ["in", "out", "run", "60"], group="copy", outputs="out", state_dir=tmp_path / "st")
    view = JobView(job, autostart=False)
    try:
        # the job commits all 60 within the last few seconds' samples: a rate shows
        wait_until(lambda: (job.metrics().in_per_s or 0) > 0, 30, "records in per second")
        wait_until(lambda: job.metrics().consumed == 60 and job.metrics().emitted == 60, 30, "all copied")
        wait_until(lambda: job.metrics().state_bytes == 1000, 30, "the state file")
        running = job.metrics()
        assert running.state == "running" and running.out_per_s is not None and running.out_per_s >= 0
        lag = job.lag()
        assert running.total_lag == 0 and running.lag is not None
        assert running.lag[["topic", "partition", "committed", "lag"]].equals(
            lag[["topic", "partition", "committed", "lag"]]
        )
        assert running.consumed == int(lag["committed"].sum())
        assert running.emitted == len(lab.replay("out")) - 5
        assert running.late_records == 0 and running.errors == () and not running.failed
        view.refresh()
        assert "running" in view.header.value and "60" in view.numbers.value and "1,000 bytes" in view.numbers.value
        stopped = job.stop(timeout=5)
        assert stopped.ended_by == "stop"
        view.refresh()
        text = view.summary()
        assert text.startswith("job copier: exited with -15 (ended by stop)")
        assert "in: 60 records committed by group copy\n" in text  # no rate once exited
        assert "out: 60 records written to out\n" in text and "lag: 0 records" in text
        assert "state store: 1,000 bytes" in text and "late records dropped: 0" in text
        assert repr(view) == "<streamlab.widgets.JobView job='copier'>"
        assert view._repr_mimebundle_()["text/plain"] == repr(view)
    finally:
        view.stop()
        job.kill()


@pytest.mark.integration  # a job subprocess against lab.serve()
def test_a_failing_job_shows_its_error(lab: streamlab.Lab, copier: Path, tmp_path: Path) -> None:
    lab.create_topic("in")
    produce(lab, "in", 3)
    job = lab.start_job(copier, ["in", "out", "fail", "3"], group="copy", outputs=["out"], state_dir=tmp_path / "s")
    job.wait(timeout=30)
    metrics = job.metrics()
    assert metrics.failed and metrics.returncode == 1 and metrics.emitted == 3
    assert metrics.errors[0] == "Traceback (most recent call last):"
    assert metrics.errors[-1] == "RuntimeError: the sink rejected a record"
    with JobView(job, autostart=False) as view:
        assert "FAILED: exit code 1" in view.summary() and "RuntimeError: the sink rejected" in view.summary()
        assert "RuntimeError: the sink rejected a record" in view.errors.value


def latest_per_key(lab: streamlab.Lab, topic: str, key: list[str]) -> pd.DataFrame:
    replay = lab.replay(topic).sort_values(["partition", "offset"], kind="stable")
    latest = replay.drop_duplicates(subset=key, keep="last")
    return latest.sort_values(key, kind="stable").reset_index(drop=True)


def test_live_table_is_the_latest_value_per_key_read_incrementally(lab: streamlab.Lab) -> None:
    with LiveTable(lab, "prices", autostart=False) as table:
        assert table.to_dataframe().empty and "no topic prices yet" in table.summary()
        lab.create_topic("prices", partitions=3)
        with lab.producer() as producer:
            for i in range(40):
                producer.send("prices", {"price": i, "shop": f"s{i % 3}"}, key=f"item{i % 9}")
        table.refresh()
        pd.testing.assert_frame_equal(table.to_dataframe(), latest_per_key(lab, "prices", ["key"]))
        with lab.producer() as producer:
            for i in range(40, 50):
                producer.send("prices", {"price": i, "shop": "s0"}, key=f"item{i % 4}")
        table.refresh()
        pd.testing.assert_frame_equal(table.to_dataframe(), latest_per_key(lab, "prices", ["key"]))
        assert table.state.read == 50  # each record read once
        assert table.summary().startswith("live table of prices: 9 key(s) by key, from 50 record(s) read\n")
        assert "item0" in table.body.value
    by_shop = LiveTable(lab, "prices", key=["shop", "key"], autostart=False)
    try:
        pd.testing.assert_frame_equal(by_shop.to_dataframe(), latest_per_key(lab, "prices", ["shop", "key"]))
    finally:
        by_shop.stop()
    with LiveTable(lab, "prices", key="nope", autostart=False) as wrong:  # said in the widget, not raised
        assert "ConfigError: prices has no column &#x27;nope&#x27; to key the table by" in wrong.status.value
    with pytest.raises(ConfigError, match="key must be a column name"):
        LiveTable(lab, "prices", key=[], autostart=False)


def test_live_plot_draws_the_newest_value_of_each_window(lab: streamlab.Lab) -> None:
    lab.create_topic("revenue", partitions=2)
    start = pd.Timestamp("2026-01-01T00:00:00Z")
    five = 5 * 60 * 1000
    t0 = start.value // 1_000_000
    with lab.producer() as producer:  # a window's row rewritten as it fills, as Quix's .current() does
        for page, sums in (("home", [3, 7, 12]), ("cart", [5])):
            for w, total in enumerate(sums):
                for partial in (total // 2, total):
                    producer.send("revenue", {"start": t0 + w * five, "end": t0 + (w + 1) * five, "value": partial},
                                  key=page)  # fmt: skip
    with LivePlot(lab, "revenue", unit="cents", autostart=False) as plot:
        data = plot.to_dataframe()
        assert list(data.columns) == ["key", "start", "value.value", "current"]
        assert data.to_dict("list") == {
            "key": ["cart", "home", "home", "home"],
            "start": [start, start, start + pd.Timedelta(minutes=5), start + pd.Timedelta(minutes=10)],
            "value.value": [5, 3, 7, 12],
            "current": [True, False, False, True],
        }
        assert plot.summary() == (
            "value.value per start by key from revenue: 4 window(s) of 2 line(s)\n"
            "  cart: 1 window(s), total 5, newest 2026-01-01 00:00:00+00:00 = 5\n"
            "  home: 3 window(s), total 22, newest 2026-01-01 00:10:00+00:00 = 12"
        )
        assert "<svg" in plot.chart.value and "stroke-dasharray" in plot.chart.value
        with LiveTable(lab, "revenue", key=["key", "start"], times=["start", "end"], autostart=False) as table:
            rows = table.to_dataframe()  # window bounds as UTC times, the latest sum of each window
            assert rows[["key", "start", "value.value"]].equals(data.drop(columns="current"))
            assert (rows["end"] - rows["start"] == pd.Timedelta(minutes=5)).all()
            assert "2026-01-01 00:10:00+00:00" in table.summary()
        figure = windows(lab, "revenue")  # the same data as a matplotlib figure, for reports
        assert summary_of(figure) == plot.summary()
        assert [line.get_label() for line in figure.axes[0].lines if not line.get_label().startswith("_")] == [
            "cart",
            "home",
        ]
