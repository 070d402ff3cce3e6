"""Durability: reopening, torn tails, crashes mid-seal, and a real kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamlab
from streamlab.errors import BrokerLockedError, CorruptSegmentError, RecoveryWarning


def _values(lab: streamlab.Lab, topic: str, partition: int = 0) -> list[object]:
    tp = streamlab.TopicPartition(topic, partition)
    end = int(lab.offsets(topic)["high_watermark"][partition])
    with lab.consumer(auto_offset_reset="earliest") as c:
        c.assign([tp])
        out: list[object] = []
        while c.position(tp) < end:
            batch = c.poll(timeout=5, max_records=10_000)
            assert batch, "no records before the high watermark"
            out.extend(r.value for r in batch)
        return out


def test_everything_acknowledged_survives_reopening(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("orders", partitions=2, config={"retention.ms": 3_600_000})
        with lab.producer() as p:
            for i in range(100):
                p.send("orders", value={"i": i}, key=f"k{i % 3}")
        lab.roll("orders")
        with lab.producer() as p:
            for i in range(100, 150):
                p.send("orders", value={"i": i}, key=f"k{i % 3}")
        before = lab.offsets("orders")
    with streamlab.connect(tmp_path) as lab:
        assert lab.offsets("orders").equals(before)
        assert lab.topics().loc[0, "config"]["retention.ms"] == 3_600_000
        df = lab.replay("orders")
        assert sorted(df["i"]) == list(range(150))


def test_torn_tail_is_cut_back_to_the_last_whole_batch(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        with lab.producer(linger_ms=0) as p:
            for i in range(10):
                p.send("t", value=i).result(10)  # one batch per record
    (log,) = (tmp_path / "topics" / "t" / "0").glob("*.log")
    whole = log.stat().st_size
    with open(log, "ab") as fh:
        fh.write(b"SLB1\xff\x00\x00\x00garbage from a crash mid-write")
    with streamlab.connect(tmp_path) as lab:
        assert _values(lab, "t") == list(range(10))
        assert log.stat().st_size == whole
        with lab.producer() as p:
            assert p.send("t", value=10).result(10).offset == 10
    with streamlab.connect(tmp_path) as lab:
        assert _values(lab, "t") == list(range(11))


def test_a_corrupted_frame_is_reported_and_the_frames_around_it_stay_readable(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        with lab.producer(linger_ms=0) as p:
            for i in range(5):
                p.send("t", value=f"value-{i}").result(10)
    (log,) = (tmp_path / "topics" / "t" / "0").glob("*.log")
    data = bytearray(log.read_bytes())
    where = data.rfind(b"value-3")
    data[where] ^= 0xFF  # flip a byte inside record 3's frame: its CRC no longer matches
    log.write_bytes(bytes(data))
    with pytest.warns(RecoveryWarning, match=r"offsets 3\.\.3"), streamlab.connect(tmp_path) as lab:
        tp = streamlab.TopicPartition("t", 0)
        assert lab.offsets("t")["high_watermark"].tolist() == [5]  # offset 3 is never handed out again
        with lab.consumer(auto_offset_reset="earliest") as c:
            c.assign([tp])
            assert [r.value for r in c.poll(timeout=5, max_records=100)] == ["value-0", "value-1", "value-2"]
            with pytest.raises(CorruptSegmentError, match=r"00000000000000000000\.log") as info:
                c.poll(timeout=1)
            assert info.value.offset == 3
            c.seek(tp, 4)
            assert [r.value for r in c.poll(timeout=5)] == ["value-4"]
        with pytest.raises(CorruptSegmentError):
            lab.replay("t")
        assert lab.replay("t", end=3)["value"].tolist() == ["value-0", "value-1", "value-2"]
        with lab.producer() as p:
            assert p.send("t", value="value-5").result(10).offset == 5


def test_crash_after_sealing_before_removing_the_active_file(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            for i in range(20):
                p.send("t", value=i)
        (log,) = (tmp_path / "topics" / "t" / "0").glob("*.log")
        saved = log.read_bytes()
        lab.roll("t")
    log.write_bytes(saved)  # as if the process died between indexing the segment and unlinking
    with streamlab.connect(tmp_path) as lab:
        assert _values(lab, "t") == list(range(20))
        assert lab.offsets("t")["high_watermark"].tolist() == [20]
    assert not list((tmp_path / "topics" / "t" / "0").glob("*.log"))


def test_crash_after_rename_before_indexing(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            for i in range(20):
                p.send("t", value=i)
        lab.roll("t")
        lab.backend.broker.catalog.execute("DELETE FROM segments")  # the index never heard of it
    with streamlab.connect(tmp_path) as lab:
        assert _values(lab, "t") == list(range(20))


def test_a_second_process_gets_a_clear_error(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        code = f"import streamlab; streamlab.connect({str(tmp_path)!r})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        assert "BrokerLockedError" in proc.stderr and "streamlab serve" in proc.stderr
        assert list(lab.topics()["name"]) == ["t"]


def test_locked_error_type_in_process(tmp_path: Path) -> None:
    from streamlab.broker import Broker

    with streamlab.connect(tmp_path), pytest.raises(BrokerLockedError, match="streamlab serve"):
        Broker(tmp_path)


PRODUCER = textwrap.dedent(
    """
    import sys, streamlab
    lab = streamlab.connect(sys.argv[1])
    p = lab.producer(linger_ms=1)
    i = 0
    while True:
        futures = [p.send("events", value={"i": i + j}, key=f"k{(i + j) % 5}") for j in range(50)]
        for f in futures:
            md = f.result(timeout=30)
            print(md.partition, md.offset, flush=True)
        i += 50
    """
)


def test_kill_9_while_producing_loses_no_acknowledged_record(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("events", partitions=3, config={"segment.bytes": 64 * 1024})
    proc = subprocess.Popen([sys.executable, "-c", PRODUCER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    acked: list[tuple[int, int]] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while len(acked) < 3000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        part, offset = map(int, line.split())
        acked.append((part, offset))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert len(acked) >= 3000, "producer did not get going"
    with streamlab.connect(tmp_path) as lab:
        df = lab.replay("events")
        stored = set(zip(df["partition"], df["offset"], strict=True))
        assert set(acked) <= stored
        for p, group in df.groupby("partition"):
            assert list(group["offset"]) == list(range(len(group))), f"gap or duplicate in partition {p}"
            keys = set(group["key"])
            assert all(k for k in keys)
        assert df["i"].is_unique
        with lab.producer() as prod:  # the log still accepts writes after recovery
            prod.send("events", value={"i": -1}, key="k0").result(10)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 40)),
            st.tuples(st.just("roll"), st.just(0)),
            st.tuples(st.just("tear"), st.integers(1, 200)),
            st.tuples(st.just("reopen"), st.just(0)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_log_reads_back_exactly_what_was_acknowledged(tmp_path_factory: pytest.TempPathFactory, ops: list) -> None:
    path = tmp_path_factory.mktemp("prop")
    lab = streamlab.connect(path)
    lab.create_topic("p", config={"segment.bytes": 4096})
    expected: list[int] = []
    counter = 0
    try:
        for op, arg in ops:
            if op == "append":
                with lab.producer(linger_ms=0) as p:
                    futures = [p.send("p", value=counter + i) for i in range(arg)]
                    for f in futures:
                        f.result(10)
                expected.extend(range(counter, counter + arg))
                counter += arg
            elif op == "roll":
                lab.roll("p")
            elif op == "tear":  # a crash mid-append: unacknowledged garbage at the tail
                lab.close()
                logs = list((path / "topics" / "p" / "0").glob("*.log"))
                if logs:
                    with open(logs[0], "ab") as fh:
                        fh.write(os.urandom(arg))
                lab = streamlab.connect(path)
            else:
                lab.close()
                lab = streamlab.connect(path)
            assert _values(lab, "p") == expected
            assert lab.offsets("p")["high_watermark"].tolist() == [len(expected)]
    finally:
        lab.close()


COMMITTER = textwrap.dedent(
    """
    import os, sys, streamlab
    lab = streamlab.connect(sys.argv[1])
    c = lab.consumer(["t"], group="g", auto_offset_reset="earliest", enable_auto_commit=False)
    for _ in range(3):
        c.poll(timeout=5, max_records=10)
        c.commit()
    print("committed", flush=True)
    os.kill(os.getpid(), 9)
    """
)


def test_committed_offsets_survive_kill_9(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            for i in range(100):
                p.send("t", value=i)
    proc = subprocess.run([sys.executable, "-c", COMMITTER, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9 and "committed" in proc.stdout
    journal = tmp_path / "committed_offsets.journal"
    with open(journal, "ab") as fh:
        fh.write(b"0badc0de {torn")  # a commit cut short by the crash: never acknowledged
    with streamlab.connect(tmp_path) as lab:
        assert lab.lag("g")[["committed", "lag"]].iloc[0].tolist() == [30, 70]
        with lab.consumer(["t"], group="g") as c:
            assert c.poll(timeout=5, max_records=1)[0].value == 30
    with streamlab.connect(tmp_path) as lab:  # checkpointed into the catalog on close
        assert lab.lag("g")["committed"].tolist() == [31]
        assert journal.stat().st_size == 0
