"""Transactions and exactly-once through the Lab API, the same test on every backend.

The embedded broker and `streamlab serve` share one transaction coordinator
(streamlab.broker.transactions): commit and abort markers, the last stable offset, the
aborted-transaction index, transactional offsets and fencing behave the same. librdkafka's
mock cluster (2.16) accepts the transactional calls and writes markers, but gives
read_committed consumers the records of aborted transactions, never commits offsets sent
to a transaction and does not fence an older producer (tried by hand), so only the first
test runs on it; the tests of those meanings run on the embedded broker and serve.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import streamlab
from streamlab import TopicPartition
from streamlab.errors import ConfigError, InvalidTxnStateError, ProducerFencedError

TIMEOUT = 10.0
SEMANTIC = pytest.mark.parametrize("backend", ["embedded", "serve"])
APP = Path(__file__).with_name("eos_app.py")


def read(lab: streamlab.Lab, topic: str, isolation: str, expected: int, *, partitions: int = 1,
         wait: float = TIMEOUT) -> list[object]:  # fmt: skip
    """The values a fresh consumer at the beginning reads (until ``expected`` came, or ``wait`` s)."""
    values: list[object] = []
    with lab.consumer(auto_offset_reset="earliest", isolation_level=isolation) as c:
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + wait
        while len(values) < expected and time.monotonic() < deadline:
            values += [r.value for r in c.poll(timeout=0.2, max_records=500)]
    return values


def committed(lab: streamlab.Lab, group: str, topic: str, partitions: int = 1) -> dict[int, int | None]:
    with lab.consumer(group=group, enable_auto_commit=False) as c:
        found = c.committed([TopicPartition(topic, p) for p in range(partitions)])
    return {tp.partition: offset for tp, offset in found.items()}


def test_a_committed_transaction_is_read_on_every_backend(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_name: Callable[[str], str]
) -> None:
    topic = make_topic(partitions=2)
    with lab.producer(transactional_id=make_name("tx")) as p:
        p.begin_transaction()  # implies init_transactions()
        for i in range(6):
            p.send(topic, {"i": i}, key=str(i))
        p.commit_transaction(timeout=TIMEOUT)
        with pytest.raises(InvalidTxnStateError):  # outside a transaction
            p.send(topic, {"i": 99})
    got = read(lab, topic, "read_committed", 6, partitions=2)
    assert sorted(v["i"] for v in got) == list(range(6))  # type: ignore[index]
    with lab.producer() as plain, pytest.raises(ConfigError):
        plain.begin_transaction()


@SEMANTIC
def test_commit_makes_records_and_offsets_visible_together(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str], make_name: Callable[[str], str]
) -> None:
    source, sink, group = make_topic(), make_topic(), make_group()
    with lab.producer() as plain:
        for i in range(5):
            plain.send(source, {"i": i})
    p = lab.producer(transactional_id=make_name("tx"))
    try:
        p.init_transactions(timeout=TIMEOUT)
        p.begin_transaction()
        for i in range(3):
            p.send(sink, {"i": i})
        p.send_offsets_to_transaction({TopicPartition(source, 0): 3}, group, timeout=TIMEOUT)
        p.flush(timeout=TIMEOUT)
        # Stored, not committed: uncommitted readers see the records, nothing else moves.
        assert len(read(lab, sink, "read_uncommitted", 3)) == 3
        assert read(lab, sink, "read_committed", 1, wait=1.0) == []
        assert lab.replay(sink).empty  # at once: replay ends at the last stable offset
        assert lab.replay(sink, isolation_level="read_uncommitted")["i"].tolist() == [0, 1, 2]
        assert committed(lab, group, source) == {0: None}
        p.commit_transaction(timeout=TIMEOUT)
    finally:
        p.close()
    assert read(lab, sink, "read_committed", 3) == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert committed(lab, group, source) == {0: 3}
    assert lab.replay(sink)["i"].tolist() == [0, 1, 2]  # markers are never rows


@SEMANTIC
def test_abort_hides_records_and_offsets(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str], make_name: Callable[[str], str]
) -> None:
    topic, group = make_topic(), make_group()
    with lab.producer(transactional_id=make_name("tx")) as p:
        p.begin_transaction()
        p.send(topic, {"i": 0, "kept": True})
        p.commit_transaction(timeout=TIMEOUT)
        p.begin_transaction()
        for i in range(1, 4):
            p.send(topic, {"i": i, "kept": False})
        p.send_offsets_to_transaction({TopicPartition(topic, 0): 4}, group, timeout=TIMEOUT)
        p.flush(timeout=TIMEOUT)  # stored: librdkafka's abort drops records it has not sent yet
        p.abort_transaction(timeout=TIMEOUT)
        p.begin_transaction()
        p.send(topic, {"i": 4, "kept": True})
        p.commit_transaction(timeout=TIMEOUT)
    assert [v["i"] for v in read(lab, topic, "read_committed", 2)] == [0, 4]  # type: ignore[index]
    assert [v["i"] for v in read(lab, topic, "read_uncommitted", 5)] == [0, 1, 2, 3, 4]  # type: ignore[index]
    assert committed(lab, group, topic) == {0: None}
    # replay and SQL show what read_committed consumers see; offsets keep the gaps
    # (1 and 7 commit markers, 2-4 aborted records, 5 the abort marker).
    replayed = lab.replay(topic)
    assert (replayed["i"].tolist(), replayed["offset"].tolist()) == ([0, 4], [0, 6])
    assert lab.sql(f'SELECT count(*) AS n, bool_and(kept) AS ok FROM "{topic}"').iloc[0].tolist() == [2, True]
    everything = lab.replay(topic, isolation_level="read_uncommitted")  # still no markers
    assert (everything["i"].tolist(), everything["offset"].tolist()) == ([0, 1, 2, 3, 4], [0, 2, 3, 4, 6])
    assert lab.sql(f'SELECT count(*) FROM "{topic}"', isolation_level="read_uncommitted").iloc[0, 0] == 5


@SEMANTIC
def test_a_newer_producer_fences_the_older_and_aborts_its_transaction(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_name: Callable[[str], str]
) -> None:
    topic, tid = make_topic(), make_name("tx")
    zombie = lab.producer(transactional_id=tid)
    fresh = lab.producer(transactional_id=tid)
    try:
        zombie.begin_transaction()
        zombie.send(topic, "zombie")
        zombie.flush(timeout=TIMEOUT)
        fresh.init_transactions(timeout=TIMEOUT)  # fences the zombie, aborts its transaction
        fresh.begin_transaction()
        fresh.send(topic, "fresh")
        fresh.commit_transaction(timeout=TIMEOUT)
        with pytest.raises(ProducerFencedError):
            zombie.commit_transaction(timeout=TIMEOUT)
        with pytest.raises(ProducerFencedError):  # for good
            zombie.begin_transaction()
            zombie.send(topic, "again")
            zombie.commit_transaction(timeout=TIMEOUT)
    finally:
        fresh.close()
        zombie.close()
    assert read(lab, topic, "read_committed", 1) == ["fresh"]
    assert read(lab, topic, "read_uncommitted", 2) == ["zombie", "fresh"]


def _run_app(target: str, *args: str, die: bool) -> subprocess.Popen[str]:
    command = [sys.executable, str(APP), target, *args] + (["--die-after", "2"] if die else [])
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # two app processes, each importing streamlab (~3 s on a loaded CI machine)
@SEMANTIC
def test_consume_transform_produce_is_exactly_once_across_kill_9(
    backend: str,
    lab: streamlab.Lab,
    make_topic: Callable[..., str],
    make_group: Callable[[], str],
    make_name: Callable[[str], str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    n = 24
    source, sink, group = make_topic(partitions=2), make_topic(partitions=2), make_group()
    with lab.producer() as plain:
        for i in range(n):
            plain.send(source, {"i": i}, key=f"k{i}")
    embedded = backend == "embedded"
    target = str(tmp_path / "lab") if embedded else "kafka://" + request.getfixturevalue("serve_bootstrap")
    if embedded:
        lab.close()  # the app's process opens the directory
    args = (source, sink, group, make_name("tx"), str(n))
    app = _run_app(target, *args, die=True)
    try:
        assert app.stdout is not None
        line = app.stdout.readline()
        assert line.strip() == "MID", app.communicate(timeout=10)
        os.kill(app.pid, signal.SIGKILL)  # mid-transaction: records stored, commit never sent
    finally:
        app.kill()
        app.communicate(timeout=10)  # reaps it and closes its pipes
    finished = _run_app(target, *args, die=False)
    out, err = finished.communicate(timeout=60)
    assert finished.returncode == 0 and out.strip() == "DONE", err
    checked = streamlab.connect(target) if embedded else lab
    try:
        values = read(checked, sink, "read_committed", n, partitions=2)
        assert sorted(v["i"] for v in values) == list(range(n))  # type: ignore[index]  # each input once
        assert all(v["double"] == 2 * v["i"] for v in values)  # type: ignore[index]
        everything = read(checked, sink, "read_uncommitted", n + 4, partitions=2)
        assert len(everything) == n + 4  # the killed transaction's 4 records, stored and aborted
        assert sorted(checked.replay(sink)["i"].tolist()) == list(range(n))
        assert sum(o or 0 for o in committed(checked, group, source, 2).values()) == n
    finally:
        if checked is not lab:
            checked.close()


@SEMANTIC
def test_closing_a_producer_aborts_its_open_transaction(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_name: Callable[[str], str]
) -> None:
    topic = make_topic()
    with lab.producer(transactional_id=make_name("tx")) as left_open:
        left_open.begin_transaction()
        left_open.send(topic, "never committed")
        left_open.flush(timeout=TIMEOUT)
    with lab.producer() as plain:
        plain.send(topic, "after").result(TIMEOUT)
    # Not left to transaction.timeout.ms: read_committed readers go on at once.
    assert read(lab, topic, "read_committed", 1) == ["after"]
    assert lab.replay(topic)["value"].tolist() == ["after"]
