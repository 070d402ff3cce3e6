"""Reprocessing a Quix Streams job (job.reset / job.rerun) and comparing its runs
(lab.diff_topics), on lab.serve() of an embedded lab: a re-run after resetting the group
to the earliest offset writes exactly the first run's windows (the diff is empty), and a
fixed window function re-run from the start changes exactly the windows pandas says it
should (the diff shows those and nothing else).

Quix Streams runs in its own environment, found as tests/test_quix_job.py finds it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_quix_job import quix_python  # tests/ is on sys.path (pytest prepends it)

import streamlab
from streamlab.datasets import clickstream

pytestmark = pytest.mark.slow

APPS = Path(__file__).parent / "quix_apps"
GROUP = "revenue"
HOUR_MS = 3_600_000
EPOCH = pd.Timestamp(0, tz="UTC")
KEY = ["key", "start"]  # a window per country
VALUE = "value.value"  # the field "value" of Quix's {"start", "end", "value"}


def produce_clicks(lab: streamlab.Lab) -> pd.DataFrame:
    lab.create_topic("clicks", partitions=3, config={"retention.ms": -1})
    events = clickstream()
    frame = pd.DataFrame({
        "country": events["country"].astype(str),
        "event": events["event"].astype(str),
        "cents": (events["amount"].fillna(0) * 100).round().astype("int64"),
        "ts": events["ts"],
    })  # fmt: skip
    with lab.producer() as producer:
        producer.send_many("clicks", frame, key="country", timestamp="ts", progress=False)
        late = frame["ts"].max() + pd.Timedelta(days=1)  # closes every window ("partition" closing)
        for partition in range(3):
            producer.send("clicks", {"country": "-", "event": "flush", "cents": 0}, key="~flush",
                          timestamp=late, partition=partition)  # fmt: skip
    return frame


def expected(frame: pd.DataFrame, *, purchases_only: bool) -> pd.Series:
    chosen = frame[frame["event"] == "purchase"] if purchases_only else frame
    ms = (chosen["ts"] - EPOCH) // pd.Timedelta(milliseconds=1)
    return chosen.assign(start=ms - ms % HOUR_MS).groupby(["country", "start"])["cents"].sum().rename_axis(KEY)


def windows(lab: streamlab.Lab, topic: str) -> pd.Series:
    out = lab.replay(topic, key_format="string")
    return out.groupby(KEY)[VALUE].last()


def test_a_rerun_from_earliest_repeats_the_run_and_a_fixed_function_changes_only_what_it_should(
    tmp_path: Path,
) -> None:
    python = quix_python()
    same = {"check_names": False, "check_dtype": False}
    with streamlab.connect(tmp_path / "lab") as lab:
        frame = produce_clicks(lab)
        total = len(frame) + 3
        first = lab.start_job(APPS / "revenue_v1.py", python=python, group=GROUP, state_dir=tmp_path / "state",
                              env={"OUTPUT": "revenue.v1"})  # fmt: skip
        done = first.wait(timeout=120)
        assert (done.returncode, done.consumed) == (0, total), str(done)
        v1 = windows(lab, "revenue.v1")
        pd.testing.assert_series_equal(v1.sort_index(), expected(frame, purchases_only=False).sort_index(), **same)

        preview = first.reset("earliest")  # the dry run: what a re-run resets, nothing moved yet
        assert not preview.applied and preview.offsets["replayed"].sum() == total
        assert preview.internal_topics and all(t.startswith(f"changelog__{GROUP}--clicks--")
                                               for t in preview.internal_topics)  # fmt: skip
        assert preview.state_path == (tmp_path / "state" / GROUP).absolute()
        assert "dry run" in repr(preview) and f"{total:,} records to process again" in repr(preview)
        assert lab.lag(GROUP)["lag"].sum() == 0 and preview.state_path.exists()

        again = first.rerun("earliest", env={"OUTPUT": "revenue.v1-again"})
        done = again.wait(timeout=120)
        assert (done.returncode, done.consumed) == (0, total), str(done)
        # the changelog was deleted with the local state: the re-run started empty, so its
        # windows are not the first run's sums counted twice
        assert lab.diff_topics("revenue.v1", "revenue.v1-again", key=KEY, key_format="string").empty

        fixed = again.rerun("earliest", script=APPS / "revenue_v2.py", env={"OUTPUT": "revenue.v2"})
        done = fixed.wait(timeout=120)
        assert (done.returncode, done.consumed) == (0, total), str(done)
        v2 = windows(lab, "revenue.v2")
        pd.testing.assert_series_equal(v2.sort_index(), expected(frame, purchases_only=True).sort_index(), **same)

        diff = lab.diff_topics("revenue.v1", "revenue.v2", key=KEY, key_format="string").set_index(KEY)
    # what pandas says the fix changes: windows with add_to_cart amounts change (or vanish
    # when they had no purchase); windows with only purchases, or no amounts at all, stay
    both = pd.concat({"v1": v1, "v2": v2}, axis=1)
    changed = both[both["v1"] != both["v2"]]
    assert len(changed) > 100 and len(changed) < len(v1)  # most hours had carts, not all
    assert set(diff.index) == set(changed.index)
    assert set(diff["change"]) == {"changed", "removed"}
    removed = diff[diff["change"] == "removed"]
    assert set(removed.index) == set(v1.index) - set(v2.index)
    assert (diff[f"{VALUE}@revenue.v1"] == both.loc[diff.index, "v1"]).all()
    kept = diff[diff["change"] == "changed"]
    assert (kept[f"{VALUE}@revenue.v2"] == both.loc[kept.index, "v2"]).all()
