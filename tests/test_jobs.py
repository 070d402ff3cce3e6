"""lab.start_job: a Kafka application as a subprocess against lab.serve(), its status,
bounds (timeout, max_records), stop/kill, lag and output, with small scripts run by this
interpreter (confluent-kafka). The Quix Streams job is tests/test_quix_job.py."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

import streamlab
from streamlab.errors import ConfigError, OperationTimeoutError
from streamlab.front.jobs import JOBS_PYTHON_ENV
from streamlab.kafka.mock_cluster import MockCluster

# Commits every record it reads; prints one line per record, so a test sees progress.
CONSUMER = """
import os, sys
from confluent_kafka import Consumer
consumer = Consumer({"bootstrap.servers": os.environ["STREAMLAB_BROKER"], "group.id": os.environ["STREAMLAB_GROUP"],
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe([sys.argv[1]])
while True:
    message = consumer.poll(0.5)
    if message is not None and message.error() is None:
        consumer.commit(message, asynchronous=False)
        print("read", message.offset())
"""


@pytest.fixture(autouse=True)
def jobs_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs run in this interpreter (CI names the Quix environment in $STREAMLAB_JOBS_PYTHON)."""
    monkeypatch.setenv(JOBS_PYTHON_ENV, sys.executable)


def script(tmp_path: Path, text: str, name: str = "job.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_job_sees_the_lab_endpoint_and_its_exit_and_output_are_reported(lab: streamlab.Lab, tmp_path: Path) -> None:
    job = lab.start_job(
        script(tmp_path, """
            import os, sys
            print("broker", os.environ["STREAMLAB_BROKER"], os.environ["Quix__Broker__Address"], sys.argv[1:])
            print("group", os.environ["STREAMLAB_GROUP"], os.environ["EXTRA"], sys.executable)
            print("something went wrong", file=sys.stderr)
            sys.exit(3)
        """), ["a", "b"], group="g1", env={"EXTRA": "x"},
    )  # fmt: skip
    status = job.wait(timeout=30)
    address = lab.serve()
    assert (status.state, status.returncode, status.ended_by, status.name) == ("exited", 3, "itself", "job")
    assert status.stdout == (f"broker {address} {address} ['a', 'b']", f"group g1 x {sys.executable}")
    assert status.stderr == ("something went wrong",)
    assert "exited with 3" in str(status) and "something went wrong" in str(status)


def test_max_records_stops_the_job_once_its_group_committed_that_many(lab: streamlab.Lab, tmp_path: Path) -> None:
    lab.create_topic("events", partitions=2)
    with lab.producer() as producer:
        for i in range(200):
            producer.send("events", {"i": i}, key=str(i))
    job = lab.start_job(script(tmp_path, CONSUMER), ["events"], group="readers", max_records=50, timeout=60)
    status = job.wait(timeout=60)
    assert status.ended_by == "max_records" and status.returncode == -15, str(status)  # SIGTERM
    assert status.consumed is not None and status.consumed >= 50
    lag = job.lag()  # the job may commit a record or two between the check and the SIGTERM
    assert lag["committed"].sum() >= status.consumed
    # one row per partition the group committed (it may have stopped before reading the other)
    assert set(lag["partition"]) <= {0, 1} and (lag["committed"] + lag["lag"] == lag["end_offset"]).all()


def test_timeout_stops_a_job_and_wait_stop_kill_are_bounded(lab: streamlab.Lab, tmp_path: Path) -> None:
    sleeper = script(tmp_path, "import time\ntime.sleep(600)\n", "sleeper.py")
    bounded = lab.start_job(sleeper, timeout=0.5)
    assert bounded.wait(timeout=30).ended_by == "timeout"

    stubborn = lab.start_job(script(tmp_path, """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(600)
    """, "stubborn.py"))  # fmt: skip
    deadline = time.monotonic() + 30
    while stubborn.status().stdout != ("ready",) and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(OperationTimeoutError, match="still runs"):
        stubborn.wait(timeout=0.2)
    assert stubborn.status().state == "running"
    started = time.monotonic()
    stopped = stubborn.stop(timeout=0.5)  # SIGTERM ignored: SIGKILL after half a second
    assert (stopped.returncode, stopped.ended_by) == (-9, "stop") and time.monotonic() - started < 5

    crashed = lab.start_job(sleeper).kill()
    assert (crashed.returncode, crashed.ended_by) == (-9, "kill")


def test_closing_the_lab_stops_its_jobs(tmp_path: Path) -> None:
    lab = streamlab.connect(tmp_path / "lab")
    job = lab.start_job(script(tmp_path, "import time\ntime.sleep(600)\n"))
    lab.close()
    status = job.status()
    assert (status.state, status.ended_by) == ("exited", "lab closed")


def test_start_job_says_what_is_wrong(lab: streamlab.Lab, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="streamlab jobs setup"):
        lab.start_job(script(tmp_path, "pass\n"), python=tmp_path / "no-such-python")
    with pytest.raises(ConfigError, match="no script"):
        lab.start_job(tmp_path / "missing.py", python=sys.executable)
    with pytest.raises(ConfigError, match="group="):
        lab.start_job(script(tmp_path, "pass\n"), max_records=10)
    with pytest.raises(ConfigError, match="without group="):
        lab.start_job(script(tmp_path, "pass\n")).lag()


def test_a_job_on_a_kafka_lab_talks_to_its_cluster(tmp_path: Path) -> None:
    with MockCluster(brokers=1) as cluster, streamlab.connect(f"kafka://{cluster.bootstrap}") as lab:
        lab.create_topic("out")
        job = lab.start_job(script(tmp_path, """
            import os
            from confluent_kafka import Producer
            producer = Producer({"bootstrap.servers": os.environ["STREAMLAB_BROKER"]})
            producer.produce("out", key=b"k", value=b'{"from": "job"}')
            assert producer.flush(10) == 0
        """))  # fmt: skip
        status = job.wait(timeout=30)
        assert status.returncode == 0, str(status)
        out = lab.replay("out")
        assert out["from"].tolist() == ["job"]
