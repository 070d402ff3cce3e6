"""A Quix Streams application as a streaming job (lab.start_job) against lab.serve() of an
embedded lab: its tumbling and hopping windows over 60,000 click events equal the sums
pandas computes from lab.replay of the input, also after a kill -9 midway and a restart
(at-least-once: a window may be emitted twice, always with the same value).

Quix Streams runs in its own environment (it pins confluent-kafka < 2.13): the one
``streamlab jobs setup .venv-quix`` creates, which .ci/run makes and names in
$STREAMLAB_JOBS_PYTHON. Under CI (or with $STREAMLAB_JOBS_PYTHON set) a missing
environment fails the test; elsewhere it skips and says how to create it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import wait_until

import streamlab
from streamlab.datasets import clickstream
from streamlab.front.jobs import JOBS_PYTHON_ENV

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
APP = Path(__file__).parent / "quix_apps" / "clicks_windows.py"
GROUP = "clicks-windows"
HOUR_MS, HALF_HOUR_MS = 3_600_000, 1_800_000
COPIES = 3  # the 20,140-event clickstream three times over, three days apart: 60,420 events
EPOCH = pd.Timestamp(0, tz="UTC")
CHANGELOGS = [f"changelog__{GROUP}--clicks--{store}"
              for store in ("tumbling_window_3600000_sum", "hopping_window_3600000_1800000_sum")]  # fmt: skip


def quix_python() -> str:
    explicit = os.environ.get(JOBS_PYTHON_ENV)
    python = explicit or str(REPO / ".venv-quix" / "bin" / "python")
    if Path(python).is_file():
        probe = subprocess.run([python, "-c", "import quixstreams"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return python
    reason = (f"no Quix Streams environment at {python}: create it with `streamlab jobs setup .venv-quix` "
              f"(.ci/run does) or set {JOBS_PYTHON_ENV}")  # fmt: skip
    if explicit or os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def produce_clicks(lab: streamlab.Lab) -> int:
    lab.create_topic("clicks", partitions=3, config={"retention.ms": -1})  # history: kept whatever its age
    for topic in ("cents-tumbling", "cents-hopping"):  # made here, Quix would wait a second for each
        lab.create_topic(topic)
    for changelog in CHANGELOGS:  # the names Quix gives its state stores' changelogs
        lab.create_topic(changelog, partitions=3, config={"cleanup.policy": "compact"})
    base = clickstream()
    copies = []
    for copy in range(COPIES):
        df = base.assign(ts=base["ts"] + pd.Timedelta(days=3 * copy))
        copies.append(df)
    events = pd.concat(copies, ignore_index=True)
    frame = pd.DataFrame({
        "country": events["country"].astype(str),
        "event": events["event"].astype(str),
        "cents": (events["amount"].fillna(0) * 100).round().astype("int64"),  # integers: sums are exact
        "ts": events["ts"],
    })  # fmt: skip
    with lab.producer() as producer:
        producer.send_many("clicks", frame, key="country", timestamp="ts", progress=False)
        # one record a day past the end on every partition closes every window of the data
        # ("partition" closing strategy); its own window stays open and is never emitted
        late = frame["ts"].max() + pd.Timedelta(days=1)
        for partition in range(3):
            producer.send("clicks", {"country": "-", "event": "flush", "cents": 0}, key="~flush",
                          timestamp=late, partition=partition)  # fmt: skip
        producer.flush(timeout=30)
    return len(frame)


def expected_windows(lab: streamlab.Lab) -> tuple[pd.Series, pd.Series]:
    clicks = lab.replay("clicks")
    clicks = clicks[clicks["key"] != "~flush"]
    ms = (clicks["timestamp"] - EPOCH) // pd.Timedelta(milliseconds=1)
    tumbling = clicks.assign(start=ms - ms % HOUR_MS).groupby(["key", "start"])["cents"].sum()
    # a 1 h window every 30 min: each event is in the window starting at its half hour and the one before
    half = ms - ms % HALF_HOUR_MS
    hopping = pd.concat([clicks.assign(start=half), clicks.assign(start=half - HALF_HOUR_MS)])
    return tumbling, hopping.groupby(["key", "start"])["cents"].sum()


def emitted_windows(lab: streamlab.Lab, topic: str, size_ms: int) -> pd.Series:
    out = lab.replay(topic, key_format="string")  # Quix writes the key as it read it: bytes
    assert (out["end"] - out["start"] == size_ms).all()
    per_window = out.groupby(["key", "start"])["value.value"]  # the field "value" of the JSON value
    # at-least-once: a window emitted again after the restart carries the same sum
    assert (per_window.nunique() == 1).all(), "a window was emitted twice with different sums"
    return per_window.first()


def test_quix_windows_equal_pandas_across_a_kill_9(tmp_path: Path) -> None:
    python = quix_python()
    with streamlab.connect(tmp_path / "lab") as lab:
        total = produce_clicks(lab)
        assert total >= 50_000
        env = {"QUIX_APP_STATE_DIR": str(tmp_path / "state"), "IDLE_TIMEOUT": "30"}

        started = time.monotonic()
        first = lab.start_job(APP, python=python, group=GROUP, env=env)
        wait_until(lambda: (first.status().consumed or 0) >= total // 3 or not first.running, 60, "a third committed")
        killed = first.kill()
        print(f"killed after {time.monotonic() - started:.1f} s: {killed}")
        assert (killed.state, killed.returncode, killed.ended_by) == ("exited", -9, "kill"), str(killed)
        assert killed.consumed is not None and total // 3 <= killed.consumed < total, "the kill -9 was not midway"

        second = lab.start_job(APP, python=python, group=GROUP, env={**env, "IDLE_TIMEOUT": "3"})
        done = second.wait(timeout=90)
        print(f"second run done after {time.monotonic() - started:.1f} s: {done}")
        assert (done.returncode, done.ended_by) == (0, "itself"), str(done)
        lag = second.lag()
        assert lag["lag"].sum() == 0 and set(lag["topic"]) == {"clicks"}

        tumbling, hopping = expected_windows(lab)
        got_tumbling = emitted_windows(lab, "cents-tumbling", HOUR_MS)
        got_hopping = emitted_windows(lab, "cents-hopping", HOUR_MS)
    assert len(tumbling) > 2_500 and len(hopping) > 5_000  # 16 countries over nine days, not every hour
    same = {"check_names": False, "check_index_type": False, "check_dtype": False}  # values, not dtypes
    pd.testing.assert_series_equal(got_tumbling.sort_index(), tumbling.sort_index(), **same)
    pd.testing.assert_series_equal(got_hopping.sort_index(), hopping.sort_index(), **same)


def test_quix_exactly_once_emits_each_window_once_across_kills(tmp_path: Path) -> None:
    """processing_guarantee="exactly-once": the windows a killed instance's open transaction
    held are aborted when its successor (same transactional.id) starts, so read_committed
    readers of the outputs see each window once; a successor without its local state
    restores it from the changelogs (read_committed too) and goes on from the same sums."""
    python = quix_python()
    with streamlab.connect(tmp_path / "lab") as lab:
        total = produce_clicks(lab)
        state = tmp_path / "state"
        env = {"QUIX_APP_STATE_DIR": str(state), "IDLE_TIMEOUT": "30", "PROCESSING_GUARANTEE": "exactly-once"}

        started = time.monotonic()
        for run in range(2):  # killed a quarter of the way in, restarted on its state, killed again
            # slowed down, so that the kill lands midway even on a fast machine
            job = lab.start_job(APP, python=python, group=GROUP, env={**env, "RECORD_DELAY_S": "0.0001"})
            wait_until(lambda: (job.status().consumed or 0) >= total // 4 or not job.running, 60,  # noqa: B023
                       "another quarter committed")  # fmt: skip
            killed = job.kill()
            print(f"run {run} killed after {time.monotonic() - started:.1f} s: {killed}")
            assert (killed.state, killed.returncode, killed.ended_by) == ("exited", -9, "kill"), str(killed)
            assert lab.lag(GROUP)["committed"].sum() < total, "the kill -9 was not midway"
        shutil.rmtree(state)  # the last instance has lost its disk: all its state is in the changelogs
        last = lab.start_job(APP, python=python, group=GROUP, env={**env, "IDLE_TIMEOUT": "3"})
        done = last.wait(timeout=90)
        print(f"last run done after {time.monotonic() - started:.1f} s: {done}")
        assert (done.returncode, done.ended_by) == (0, "itself"), str(done)
        assert last.lag()["lag"].sum() == 0

        tumbling, hopping = expected_windows(lab)
        outputs = {topic: lab.replay(topic, key_format="string") for topic in ("cents-tumbling", "cents-hopping")}
        everything = {topic: lab.replay(topic, key_format="string", isolation_level="read_uncommitted")
                      for topic in outputs}  # fmt: skip
    # the kills left transactions open, aborted since by the successors: the log still holds
    # their windows, read_committed skips them
    assert any(out.duplicated(["key", "start"]).any() for out in everything.values())
    same = {"check_names": False, "check_index_type": False, "check_dtype": False}  # values, not dtypes
    for (topic, out), expected in zip(outputs.items(), (tumbling, hopping), strict=True):
        assert not out.duplicated(["key", "start"]).any(), f"{topic}: a window was emitted twice"
        assert (out["end"] - out["start"] == HOUR_MS).all()
        sums = out.set_index(["key", "start"])["value.value"].sort_index()
        pd.testing.assert_series_equal(sums, expected.sort_index(), **same)
