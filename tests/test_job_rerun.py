"""job.reset / job.rerun without Quix: a small confluent-kafka job (this interpreter) that
doubles numbers into $OUTPUT; Quix's changelog topic and state directory are stood in for
by a topic and a directory with its names. The Quix re-run is tests/test_reprocess.py."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import streamlab
from streamlab.errors import ConfigError, JobError
from streamlab.front.jobs import JOBS_PYTHON_ENV

# Doubles every number it reads into $OUTPUT, commits, and exits after a second without records.
DOUBLER = """
import json, os
from confluent_kafka import Consumer, Producer
broker = os.environ["STREAMLAB_BROKER"]
consumer = Consumer({"bootstrap.servers": broker, "group.id": os.environ["STREAMLAB_GROUP"],
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
producer = Producer({"bootstrap.servers": broker})
consumer.subscribe(["numbers"])
print("state dir", os.environ["STREAMLAB_JOB_STATE_DIR"] == os.environ["Quix__Deployment__State__Path"])
idle = 0
while idle < 4:
    message = consumer.poll(0.25)
    if message is None or message.error() is not None:
        idle += 1
        continue
    idle = 0
    n = json.loads(message.value())["n"]
    producer.produce(os.environ["OUTPUT"], key=message.key(), value=json.dumps({"double": 2 * n}).encode())
    producer.flush(10)
    consumer.commit(message, asynchronous=False)
consumer.close()
"""


@pytest.fixture(autouse=True)
def jobs_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JOBS_PYTHON_ENV, sys.executable)


def test_rerun_resets_the_group_and_clears_its_state_then_runs_again(lab: streamlab.Lab, tmp_path: Path) -> None:
    lab.create_topic("numbers", partitions=2)
    with lab.producer() as producer:
        for n in range(40):
            producer.send("numbers", {"n": n}, key=f"k{n}")
    app = tmp_path / "doubler.py"
    app.write_text(textwrap.dedent(DOUBLER))
    state = tmp_path / "state"
    first = lab.start_job(app, group="doubler", state_dir=state, env={"OUTPUT": "doubled.v1"})
    done = first.wait(timeout=60)
    assert (done.returncode, done.consumed, done.stdout) == (0, 40, ("state dir True",)), str(done)
    # what Quix would have left: a changelog topic of the group and its state directory
    lab.create_topic("changelog__doubler--numbers--default", config={"cleanup.policy": "compact"})
    (state / "doubler" / "default").mkdir(parents=True)
    lab.create_topic("changelog__doubler-other--numbers--default")  # another group's: kept

    preview = first.reset()
    assert preview.internal_topics == ("changelog__doubler--numbers--default",)
    assert preview.offsets[["partition", "current", "new"]].values.tolist() == [
        [p, c, 0] for p, c in zip(lab.lag("doubler")["partition"], lab.lag("doubler")["committed"], strict=True)
    ]
    assert repr(preview).splitlines() == [
        "group 'doubler' to 'earliest' (dry run: nothing changed yet)",
        "  offsets: would move 2 partition(s) of numbers: 40 records to process again, 0 skipped",
        "  state: would delete 1 topic(s): changelog__doubler--numbers--default",
        "  state: would remove the local state directory state/doubler",
    ]
    assert lab.lag("doubler")["lag"].sum() == 0 and (state / "doubler").exists()  # a preview moves nothing

    second = first.rerun("earliest", env={"OUTPUT": "doubled.v2"})
    assert second.group == "doubler" and second.spec.state_dir == state.absolute()
    done = second.wait(timeout=60)
    assert (done.returncode, done.consumed) == (0, 40), str(done)
    names = set(lab.topics()["name"])
    assert "changelog__doubler--numbers--default" not in names and "changelog__doubler-other--numbers--default" in names
    assert not (state / "doubler").exists()
    assert lab.diff_topics("doubled.v1", "doubled.v2").empty
    assert len(lab.replay("doubled.v2")) == 40

    nothing_left = second.reset()  # a second preview: only the offsets to move
    assert (nothing_left.internal_topics, nothing_left.state_path) == ((), None)


def test_reset_refuses_a_running_job_and_a_job_without_group(lab: streamlab.Lab, tmp_path: Path) -> None:
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import time\ntime.sleep(600)\n")
    running = lab.start_job(sleeper, group="sleepers")
    try:
        assert running.reset().applied is False  # a preview is fine while it runs
        with pytest.raises(JobError, match="still running"):
            running.reset(dry_run=False)
        with pytest.raises(JobError, match="still running"):
            running.rerun()
    finally:
        running.kill()
    with pytest.raises(ConfigError, match="without group="):
        lab.start_job(sleeper, timeout=0.1).reset()


def test_rerun_from_a_time_processes_only_what_came_after_it(lab: streamlab.Lab, tmp_path: Path) -> None:
    lab.create_topic("numbers", config={"retention.ms": -1})
    with lab.producer() as producer:
        for n in range(30):  # one a minute from 2026-01-05 00:00 UTC
            producer.send("numbers", {"n": n}, key=f"k{n}", timestamp=1_767_571_200_000 + n * 60_000)
    app = tmp_path / "doubler.py"
    app.write_text(textwrap.dedent(DOUBLER))
    first = lab.start_job(app, group="doubler", state_dir=tmp_path / "state", env={"OUTPUT": "doubled.v1"})
    assert first.wait(timeout=60).consumed == 30

    preview = first.reset("2026-01-05T00:20:00Z")
    assert preview.offsets[["current", "new", "replayed"]].values.tolist() == [[30, 20, 10]]
    second = first.rerun("2026-01-05T00:20:00Z", env={"OUTPUT": "doubled.from-0020"})
    assert second.wait(timeout=60).consumed == 10
    assert sorted(lab.replay("doubled.from-0020")["double"]) == [2 * n for n in range(20, 30)]
    diff = lab.diff_topics("doubled.v1", "doubled.from-0020")
    assert diff["change"].tolist() == ["removed"] * 20  # the first 20 keys were not processed again
