"""Faults beyond a clean kill -9: a full disk, crashes at chosen points of sealing,
compaction and retention, readers racing the cleaner, and flipped or missing files.

The promise each test checks: no acknowledged record lost or doubled, corruption
reported (naming the file and offsets) and never served, and writes that fail leave
nothing behind.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import streamlab
from streamlab.errors import CorruptSegmentError, RecoveryWarning, StorageError, TopicExistsError, UnknownTopicError

HOUR_MS = 3_600_000


# a small full disk (fixtures small_disk and fill_disk in conftest.py) -----------------------
def _offsets_and_values(lab: streamlab.Lab, topic: str) -> list[tuple[int, object]]:
    """(offset, value) of every record, values as sent (dict values as their JSON text)."""
    df = lab.replay(topic, raw=True)
    if df["value"].map(lambda v: isinstance(v, str) and v.isdigit()).all():
        df["value"] = df["value"].astype(int)
    return list(zip(df["offset"].tolist(), df["value"].tolist(), strict=True))


@pytest.mark.parametrize("segment_bytes", [64 * 1024 * 1024, 4096], ids=["no-seal", "sealing"])
def test_a_full_disk_refuses_writes_keeps_nothing_of_them_and_loses_nothing_acknowledged(
    small_disk: Path, fill_disk: Callable[[Path], Path], segment_bytes: int
) -> None:
    data = small_disk / "lab"
    acknowledged: list[str] = []
    with streamlab.connect(data) as lab:
        lab.create_topic("t", config={"segment.bytes": segment_bytes, "retention.ms": -1})
        with lab.producer(linger_ms=0) as p:
            for i in range(50):
                p.send("t", value=f"before-{i}").result(10)
                acknowledged.append(f"before-{i}")
            filler = fill_disk(small_disk)
            failures = 0
            for i in range(100):
                value = f"full-{i}-" + "x" * 2000
                try:
                    p.send("t", value=value).result(10)
                    acknowledged.append(value)  # a seal may still fit where a frame did not
                except StorageError as exc:
                    assert exc.kafka_code == 56 and exc.retriable
                    failures += 1
            assert failures > 0, "the disk never filled up"
            filler.unlink()
            for i in range(200):
                p.send("t", value=f"after-{i}").result(10)
                acknowledged.append(f"after-{i}")
        assert [v for _, v in _offsets_and_values(lab, "t")] == acknowledged
    with streamlab.connect(data) as lab:
        stored = _offsets_and_values(lab, "t")
        assert [v for _, v in stored] == acknowledged
        assert [o for o, _ in stored] == list(range(len(acknowledged)))  # dense: no offset lost or reused


def test_a_full_disk_fails_a_commit_without_tearing_the_journal(
    small_disk: Path, fill_disk: Callable[[Path], Path]
) -> None:
    data = small_disk / "lab"
    tp = streamlab.TopicPartition("t", 0)
    with streamlab.connect(data) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            for i in range(20):
                p.send("t", value=i)
        with lab.consumer(group="g", auto_offset_reset="earliest", enable_auto_commit=False) as c:
            c.assign([tp])
            c.commit({tp: 5})
            filler = fill_disk(small_disk)
            with pytest.raises(StorageError):
                for offset in range(6, 200):  # the journal has a little room left in its page
                    c.commit({tp: offset})
            filler.unlink()
            c.commit({tp: 17})
    with streamlab.connect(data) as lab, lab.consumer(group="g") as c:
        assert c.committed([tp])[tp] == 17


# kill -9 at chosen points -------------------------------------------------------------------
_CHILD = textwrap.dedent(
    """
    import sys, time
    import streamlab
    data, scenario = sys.argv[1], sys.argv[2]
    lab = streamlab.connect(data)
    now = int(time.time() * 1000)
    if scenario == "seal":
        lab.create_topic("t", config={"retention.ms": -1})
        with lab.producer() as p:
            for i in range(100):
                p.send("t", value=i, key=f"k{i}")
        print("acked", flush=True)
        lab.roll("t")
    elif scenario == "seal-on-time":  # segment.ms, sealing send_many's typed fields
        import pandas as pd
        from streamlab.broker.segment_timer import seal_due
        lab.close()
        clock = streamlab.ManualClock()
        lab = streamlab.connect(data, clock=clock)
        lab.create_topic("t", config={"retention.ms": -1, "segment.ms": 60_000})
        with lab.producer() as p:
            p.send_many("t", pd.DataFrame({"n": range(100), "name": [f"r{i}" for i in range(100)]}))
        print("acked", flush=True)
        clock.advance(61)
        seal_due(lab.backend.broker)
    elif scenario == "compact":
        lab.create_topic("t", config={"cleanup.policy": "compact", "retention.ms": -1})
        for rnd in range(5):
            with lab.producer() as p:
                for k in range(10):
                    p.send("t", value=rnd, key=f"k{k}")
            lab.roll("t")
        print("acked", flush=True)
        lab.apply_retention()
    elif scenario == "retention":
        lab.create_topic("t", config={"retention.ms": 3_600_000})
        for rnd in range(3):
            with lab.producer() as p:
                for k in range(10):
                    p.send("t", value=rnd, key=f"k{k}", timestamp=now - 10 * 3_600_000)
            lab.roll("t")
        with lab.producer() as p:
            for k in range(10):
                p.send("t", value=99, key=f"k{k}", timestamp=now)
        print("acked", flush=True)
        lab.apply_retention()
    elif scenario == "delete-topic":
        lab.create_topic("t", config={"retention.ms": -1})
        lab.create_topic("kept", config={"retention.ms": -1})
        for name in ("t", "kept"):
            with lab.producer() as p:
                for i in range(50):
                    p.send(name, value=i)
            lab.roll(name)
        print("acked", flush=True)
        lab.delete_topic("t")
    print("no crash", flush=True)
    """
)


def _crash_child(data: Path, scenario: str, point: str) -> str:
    env = {**os.environ, "STREAMLAB_CRASH_AT": point}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data), scenario], env=env, capture_output=True, timeout=120, text=True
    )
    assert done.returncode == -9, f"the child did not reach {point}: {done.returncode}\n{done.stdout}{done.stderr}"
    assert "acked" in done.stdout
    return done.stdout


@pytest.mark.parametrize("point", ["seal.before-rename", "seal.before-index", "seal.before-unlink-active"])
def test_kill_9_while_sealing_loses_and_doubles_nothing(tmp_path: Path, point: str) -> None:
    _crash_child(tmp_path, "seal", point)
    with streamlab.connect(tmp_path) as lab:
        assert _offsets_and_values(lab, "t") == [(i, i) for i in range(100)]
        assert not list((tmp_path / "topics" / "t" / "0").glob("*.tmp"))
        lab.roll("t")
        with lab.producer() as p:
            assert p.send("t", value=100).result(10).offset == 100
    with streamlab.connect(tmp_path) as lab:
        assert _offsets_and_values(lab, "t") == [(i, i) for i in range(101)]


@pytest.mark.parametrize("point", ["seal.before-rename", "seal.before-index", "seal.before-unlink-active"])
def test_kill_9_while_sealing_on_segment_ms_loses_and_doubles_nothing(tmp_path: Path, point: str) -> None:
    _crash_child(tmp_path, "seal-on-time", point)
    with streamlab.connect(tmp_path) as lab:
        df = lab.replay("t")
        assert df["offset"].tolist() == list(range(100)) and df["n"].tolist() == list(range(100))
        assert df["name"].tolist() == [f"r{i}" for i in range(100)]
        assert not list((tmp_path / "topics" / "t" / "0").glob("*.tmp"))
        lab.roll("t")
        with lab.producer() as p:
            assert p.send("t", value={"n": 100, "name": "r100"}).result(10).offset == 100
    with streamlab.connect(tmp_path) as lab:
        assert lab.replay("t")["n"].tolist() == list(range(101))


def test_kill_9_while_deleting_a_topic_leaves_it_deleted_and_its_name_free(tmp_path: Path) -> None:
    _crash_child(tmp_path, "delete-topic", "delete-topic.after-commit")
    assert (tmp_path / "topics" / "t").exists()  # the crash left the files behind
    with streamlab.connect(tmp_path) as lab:
        assert not (tmp_path / "topics" / "t").exists()  # removed on open: the catalog says deleted
        assert set(lab.topics()["name"]) == {"kept"}
        assert _offsets_and_values(lab, "kept") == [(i, i) for i in range(50)]
        lab.create_topic("t")
        assert lab.offsets("t")["high_watermark"].tolist() == [0]  # nothing of the old one comes back


@pytest.mark.parametrize("point", ["compact.before-commit", "compact.after-commit"])
def test_kill_9_while_compacting_leaves_every_offset_once(tmp_path: Path, point: str) -> None:
    _crash_child(tmp_path, "compact", point)
    for _ in range(2):  # reopening finishes the job; a second open changes nothing
        with streamlab.connect(tmp_path) as lab:
            df = lab.replay("t")
            offsets = df["offset"].tolist()
            assert offsets == sorted(set(offsets)), "an offset is held twice or out of order"
            latest = df.groupby("key")["value"].last().to_dict()
            assert latest == {f"k{k}": 4 for k in range(10)}  # every key's latest record survives
            assert offsets[-10:] == list(range(40, 50))
            assert lab.sql("SELECT count(*) AS n FROM t")["n"][0] == len(offsets)
    parquet = sorted(p.name for p in (tmp_path / "topics" / "t" / "0").glob("*.parquet"))
    assert len(parquet) == 1, parquet  # the old segments are gone, not brought back


def test_kill_9_after_retention_commits_never_brings_deleted_segments_back(tmp_path: Path) -> None:
    _crash_child(tmp_path, "retention", "retention.after-commit")
    with streamlab.connect(tmp_path) as lab:
        start = int(lab.offsets("t")["log_start_offset"][0])
        assert start == 30
        df = lab.replay("t")
        assert df["offset"].tolist() == list(range(30, 40))
        assert set(df["value"]) == {99}
        assert lab.sql('SELECT min("offset") AS m FROM t')["m"][0] == 30
    assert len(list((tmp_path / "topics" / "t" / "0").glob("*.parquet"))) == 0


@pytest.mark.slow
def test_random_kill_9_of_a_producer_on_a_compacted_topic_with_small_segments(tmp_path: Path) -> None:
    """The loop that found the doubled offsets: a producer on a compacted topic whose
    segments seal (and so compact) every few records, killed at random moments."""
    child = textwrap.dedent(
        """
        import sys, streamlab
        lab = streamlab.connect(sys.argv[1])
        if "t" not in set(lab.topics()["name"]):
            lab.create_topic("t", config={"cleanup.policy": "compact", "segment.bytes": 2048, "retention.ms": -1})
        n = int(lab.offsets("t")["high_watermark"][0])
        with lab.producer(linger_ms=0) as p:
            while True:
                p.send("t", value=n, key=f"k{n % 7}").result(10)
                print(n, flush=True)
                n += 1
        """
    )
    rng = random.Random(7)
    acked: dict[str, int] = {}
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", child, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        target = rng.randint(20, 120)
        for seen, line in enumerate(proc.stdout, 1):
            n = int(line)
            acked[f"k{n % 7}"] = n
            if seen >= target or time.monotonic() > deadline:
                break
        proc.kill()
        proc.wait()
        proc.stdout.close()
        with streamlab.connect(tmp_path) as lab:
            df = lab.replay("t")
            offsets = df["offset"].tolist()
            assert offsets == sorted(set(offsets))
            latest = df.groupby("key")["value"].last().to_dict()
            for key, value in acked.items():
                assert latest[key] >= value  # the acknowledged latest (or a newer one) is there
            assert max(offsets) + 1 == lab.offsets("t")["high_watermark"][0]


# readers racing the cleaner ---------------------------------------------------------------
def test_replay_and_sql_work_on_snapshots_while_retention_and_compaction_run(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("steady", partitions=2, config={"retention.ms": -1})
        lab.create_topic("churn", config={"cleanup.policy": "compact", "retention.ms": -1})
        with lab.producer() as p:
            for i in range(2000):
                p.send("steady", value={"i": i}, key=f"k{i % 50}")
        lab.roll("steady")
        stop = threading.Event()
        errors: list[BaseException] = []

        def churn() -> None:
            n = 0
            try:
                while not stop.is_set():
                    with lab.producer() as p:
                        for k in range(20):
                            p.send("churn", value={"n": n}, key=f"k{k}")
                            n += 1
                    lab.roll("churn")
                    lab.apply_retention()  # compacts churn: its old files go away
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=churn)
        worker.start()
        try:
            deadline = time.monotonic() + 3
            rounds = 0
            while time.monotonic() < deadline or rounds < 10:
                assert len(lab.replay("steady")) == 2000
                assert lab.sql("SELECT count(*) AS n FROM steady")["n"][0] == 2000
                offsets = lab.replay("churn", raw=True)["offset"].tolist()
                assert offsets == sorted(set(offsets)), "a replay saw an offset twice"
                lab.sql("SELECT count(*) FROM churn")
                rounds += 1
        finally:
            stop.set()
            worker.join(30)
        assert not errors, errors


# damaged and missing files ------------------------------------------------------------------
def _sealed_topic(path: Path, records: int = 300) -> list[tuple[int, object]]:
    with streamlab.connect(path) as lab:
        lab.create_topic("t", config={"retention.ms": -1})
        with lab.producer() as p:
            for i in range(records):
                p.send("t", value={"i": i, "name": f"n{i}"}, key=f"k{i % 10}")
        lab.roll("t")
        return _offsets_and_values(lab, "t")


def test_every_flipped_bit_in_a_sealed_segment_is_reported_never_served(tmp_path: Path) -> None:
    original = _sealed_topic(tmp_path)
    (segment,) = (tmp_path / "topics" / "t" / "0").glob("*.parquet")
    pristine = segment.read_bytes()
    rng = random.Random(11)
    for _ in range(30):
        flipped = bytearray(pristine)
        at = rng.randrange(len(flipped))
        flipped[at] ^= 1 << rng.randrange(8)
        segment.write_bytes(bytes(flipped))
        with streamlab.connect(tmp_path) as lab:
            with pytest.raises(CorruptSegmentError, match=segment.name) as info:
                lab.replay("t")
            assert info.value.offset == 0 and info.value.topic == "t"
            with pytest.raises(CorruptSegmentError):
                lab.sql("SELECT count(*) FROM t")
            with lab.consumer(auto_offset_reset="earliest") as c, pytest.raises(CorruptSegmentError):
                c.assign([streamlab.TopicPartition("t", 0)])
                c.poll(timeout=1)
    segment.write_bytes(pristine)
    with streamlab.connect(tmp_path) as lab:
        assert _offsets_and_values(lab, "t") == original


def test_a_damaged_sealed_segment_leaves_the_ones_before_it_readable(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t", config={"retention.ms": -1})
        for rnd in range(3):
            with lab.producer() as p:
                for i in range(10):
                    p.send("t", value=rnd * 10 + i)
            lab.roll("t")
    second = sorted((tmp_path / "topics" / "t" / "0").glob("*.parquet"))[1]
    data = bytearray(second.read_bytes())
    data[len(data) // 2] ^= 0x10
    second.write_bytes(bytes(data))
    with streamlab.connect(tmp_path) as lab:
        tp = streamlab.TopicPartition("t", 0)
        with lab.consumer(auto_offset_reset="earliest") as c:
            c.assign([tp])
            assert [r.value for r in c.poll(timeout=5, max_records=100)] == list(range(10))
            with pytest.raises(CorruptSegmentError, match=r"offsets 10\.\.19") as info:
                c.poll(timeout=1)
            assert info.value.path == second.name
            c.seek(tp, 20)
            assert [r.value for r in c.poll(timeout=5, max_records=100)] == list(range(20, 30))
        assert lab.replay("t", end=10)["value"].tolist() == list(range(10))
        assert lab.replay("t", start=20)["value"].tolist() == list(range(20, 30))


def test_damage_found_while_reading_stops_the_read_before_the_active_records(tmp_path: Path) -> None:
    """A sealed segment found damaged in the middle of a read ends that read: the records
    after it (here the unsealed ones) are not served, or the consumer would step over the
    damaged offsets without an error."""
    (tmp_path / "data").mkdir()
    with streamlab.connect(tmp_path / "data") as lab:
        lab.create_topic("t", config={"retention.ms": -1})
        for rnd in range(3):
            with lab.producer() as p:
                for i in range(10):
                    p.send("t", value=rnd * 10 + i)
            if rnd < 2:
                lab.roll("t")  # offsets 20..29 stay in the active segment
    second = sorted((tmp_path / "data" / "topics" / "t" / "0").glob("*.parquet"))[1]
    with streamlab.connect(tmp_path / "data") as lab:
        tp = streamlab.TopicPartition("t", 0)
        data = bytearray(second.read_bytes())
        data[len(data) // 2] ^= 0x10
        second.write_bytes(bytes(data))  # damaged after the log opened: found by the read
        with lab.consumer(auto_offset_reset="earliest") as c:
            c.assign([tp])
            assert [r.value for r in c.poll(timeout=5, max_records=100)] == list(range(10))
            with pytest.raises(CorruptSegmentError, match=r"offsets 10\.\.19"):
                c.poll(timeout=1)
            c.seek(tp, 20)
            assert [r.value for r in c.poll(timeout=5, max_records=100)] == list(range(20, 30))


def test_a_deleted_segment_is_reported_not_a_silent_gap(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t", config={"retention.ms": -1})
        for rnd in range(2):
            with lab.producer() as p:
                for i in range(10):
                    p.send("t", value=rnd * 10 + i)
            lab.roll("t")
    sorted((tmp_path / "topics" / "t" / "0").glob("*.parquet"))[-1].unlink()
    with pytest.warns(RecoveryWarning, match="missing"), streamlab.connect(tmp_path) as lab:
        assert lab.offsets("t")["high_watermark"].tolist() == [20]  # its offsets are not reused
        with pytest.raises(CorruptSegmentError, match="missing"):
            lab.replay("t")
        with lab.producer() as p:
            assert p.send("t", value=20).result(10).offset == 20


def test_zeroed_block_in_the_active_segment_never_reuses_offsets(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t", config={"retention.ms": -1})
        with lab.producer(linger_ms=0) as p:
            for i in range(100):
                p.send("t", value="v" * 200 + str(i)).result(10)
    (log,) = (tmp_path / "topics" / "t" / "0").glob("*.log")
    data = bytearray(log.read_bytes())
    data[4096:8192] = bytes(4096)
    log.write_bytes(bytes(data))
    with pytest.warns(RecoveryWarning, match="damaged"), streamlab.connect(tmp_path) as lab:
        assert lab.offsets("t")["high_watermark"].tolist() == [100]
        with lab.producer() as p:
            assert p.send("t", value="new").result(10).offset == 100
        tp = streamlab.TopicPartition("t", 0)
        with lab.consumer(auto_offset_reset="earliest") as c:
            c.assign([tp])
            c.seek(tp, 99)
            assert [r.offset for r in c.poll(timeout=5)] == [99, 100]


def test_lab_sql_cannot_change_the_broker(tmp_path: Path) -> None:
    tp = streamlab.TopicPartition("t", 0)
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            p.send("t", value={"a": 1})
        with lab.consumer(group="g", enable_auto_commit=False) as c:
            c.assign([tp])
            c.commit({tp: 1})
        for statement in ("DELETE FROM committed_offsets", "UPDATE topics SET partitions = 0", "DROP TABLE segments"):
            with pytest.raises(streamlab.StreamlabError):
                lab.sql(statement)
        assert lab.sql("SELECT a FROM t")["a"].tolist() == [1]
    with streamlab.connect(tmp_path) as lab, lab.consumer(group="g") as c:
        assert c.committed([tp])[tp] == 1
        assert lab.topics()["partitions"].tolist() == [1]


# a lost or damaged catalog, and `streamlab check` -----------------------------------------
def _topic_with_history(path: Path) -> tuple[list[tuple[int, object]], pd.DataFrame]:
    tp = streamlab.TopicPartition("orders", 1)
    with streamlab.connect(path) as lab:
        lab.create_topic("orders", partitions=2, config={"retention.ms": -1, "segment.bytes": 1_000_000})
        with lab.producer() as p:
            for i in range(100):
                p.send("orders", value=i, key=f"k{i % 5}")
        lab.roll("orders")
        with lab.producer() as p:
            for i in range(100, 130):
                p.send("orders", value=i, key=f"k{i % 5}")
        with lab.consumer(group="g", enable_auto_commit=False) as c:
            c.assign([tp])
            c.commit({tp: 7})
        return _offsets_and_values(lab, "orders"), lab.offsets("orders")


def test_a_deleted_catalog_is_rebuilt_from_the_files_never_an_empty_broker(tmp_path: Path) -> None:
    stored, offsets = _topic_with_history(tmp_path)
    (tmp_path / "catalog.duckdb").unlink()
    with pytest.warns(RecoveryWarning, match="catalog .* is missing"), streamlab.connect(tmp_path) as lab:
        assert _offsets_and_values(lab, "orders") == stored
        assert lab.offsets("orders").equals(offsets)
        config = lab.topics().loc[0, "config"]
        assert config["retention.ms"] == -1 and config["segment.bytes"] == 1_000_000
        with lab.consumer(group="g") as c:
            assert c.committed([streamlab.TopicPartition("orders", 1)]) == {streamlab.TopicPartition("orders", 1): 7}


def test_a_damaged_catalog_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    stored, _ = _topic_with_history(tmp_path)
    catalog = tmp_path / "catalog.duckdb"
    catalog.write_bytes(b"\0" * catalog.stat().st_size)
    with pytest.warns(RecoveryWarning, match="cannot be opened"), streamlab.connect(tmp_path) as lab:
        assert _offsets_and_values(lab, "orders") == stored
    assert list(tmp_path.glob("catalog.duckdb.damaged-*"))


def _check(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamlab.cli.main", "--data", str(path), "check", *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_streamlab_check_reports_damage_and_repair_takes_it_out(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t", config={"retention.ms": -1})
        for rnd in range(3):
            with lab.producer() as p:
                for i in range(10):
                    p.send("t", value=rnd * 10 + i)
            lab.roll("t")
        with lab.producer(linger_ms=0) as p:
            for i in range(30, 35):
                p.send("t", value=f"active-{i}").result(10)
    clean = _check(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "checked 1 partition(s), 3 sealed segment(s)" in clean.stdout and "ok" in clean.stdout

    folder = tmp_path / "topics" / "t" / "0"
    second = sorted(folder.glob("*.parquet"))[1]
    data = bytearray(second.read_bytes())
    data[100] ^= 0x01
    second.write_bytes(bytes(data))
    (active,) = folder.glob("*.log")
    data = bytearray(active.read_bytes())
    data[data.rfind(b"active-32")] ^= 0xFF
    active.write_bytes(bytes(data))

    found = _check(tmp_path)
    assert found.returncode == 1
    assert f"t/0 offsets 10..19: {second.name}: checksum mismatch" in found.stdout
    assert "t/0 offsets 32..32" in found.stdout
    fixed = _check(tmp_path, "--repair")
    assert fixed.returncode == 0, fixed.stdout
    assert (tmp_path / "damaged" / "t" / "0" / second.name).exists()
    assert _check(tmp_path).returncode == 0
    with streamlab.connect(tmp_path) as lab:
        values = lab.replay("t")["value"].tolist()
        assert values == [*range(10), *range(20, 30), "active-30", "active-31", "active-33", "active-34"]
        assert lab.offsets("t")["high_watermark"].tolist() == [35]
        with lab.producer() as p:
            assert p.send("t", value="next").result(10).offset == 35


@pytest.mark.slow
def test_replay_returns_more_than_2_gib_of_string_values(tmp_path: Path) -> None:
    """Arrow's plain strings stop at 2 GiB per column chunk; replay uses large strings."""
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("big", config={"retention.ms": -1, "max.message.bytes": 4 << 20})
        chunk = "x" * (2 << 20)
        with lab.producer() as p:
            for i in range(1100):
                p.send("big", value=chunk[:-6] + f"{i:06d}")
            p.flush(timeout=300)  # 2.2 GB fsynced: close()'s 30 s is too short on a busy disk
        df = lab.replay("big")
        assert len(df) == 1100
        assert int(df["value"].str.len().sum()) == 1100 * (2 << 20) > 2**31
        assert df["value"].iloc[-1].endswith("001099") and df["offset"].tolist() == list(range(1100))


def test_a_flipped_bit_in_the_last_batch_is_damage_not_a_torn_tail(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        with lab.producer(linger_ms=0) as p:
            for i in range(5):
                p.send("t", value=f"value-{i}").result(10)
    (log,) = (tmp_path / "topics" / "t" / "0").glob("*.log")
    data = bytearray(log.read_bytes())
    data[data.rfind(b"value-4")] ^= 0x01
    log.write_bytes(bytes(data))
    with (
        pytest.warns(RecoveryWarning, match=r"offsets 4\.\.4\) fails its checksum"),
        streamlab.connect(tmp_path) as lab,
    ):
        assert lab.offsets("t")["high_watermark"].tolist() == [5]  # offset 4 was acknowledged: not reused
        with pytest.raises(CorruptSegmentError):
            lab.replay("t")
        with lab.producer() as p:
            assert p.send("t", value="value-5").result(10).offset == 5
        assert lab.replay("t", start=5)["value"].tolist() == ["value-5"]
    with streamlab.connect(tmp_path) as lab:
        assert lab.replay("t", end=4)["value"].tolist() == [f"value-{i}" for i in range(4)]
        assert lab.replay("t", start=5)["value"].tolist() == ["value-5"]


def test_a_catalog_row_naming_a_path_elsewhere_is_dropped_never_followed(tmp_path: Path) -> None:
    import duckdb

    _sealed_topic(tmp_path / "lab", records=10)
    outside = tmp_path / "outside.parquet"
    outside.write_bytes(b"not ours")
    with duckdb.connect(str(tmp_path / "lab" / "catalog.duckdb")) as con:
        con.execute("INSERT INTO segments VALUES ('t', 0, 100, 110, 11, 0, 0, 8, '../../../../outside.parquet', NULL)")
    with pytest.warns(RecoveryWarning, match="not a segment file name"), streamlab.connect(tmp_path / "lab") as lab:
        assert len(lab.replay("t")) == 10
        lab.apply_retention()
    assert outside.read_bytes() == b"not ours"


# deleting a topic under a running reader -------------------------------------------------
def _sealed_segments(lab: streamlab.Lab, topic: str, rounds: int, per_round: int) -> None:
    with lab.producer() as p:
        for r in range(rounds):
            for i in range(per_round):
                p.send(topic, value={"i": r * per_round + i}, partition=0)
            p.flush()
            lab.roll(topic)


def test_a_replay_running_when_its_topic_is_deleted_reads_what_it_began_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlab.broker import query
    from streamlab.model.views import Bounds

    monkeypatch.setattr(query, "PROGRESS_CHUNK", 50)  # read in many small chunks
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("doomed", config={"retention.ms": -1})
        _sealed_segments(lab, "doomed", rounds=6, per_round=100)
        folder = tmp_path / "topics" / "doomed"
        first_chunk, deleted = threading.Event(), threading.Event()

        def progress(rows: int) -> None:
            if not first_chunk.is_set():
                first_chunk.set()
                assert deleted.wait(10)

        result: list[object] = []
        reader = threading.Thread(
            target=lambda: result.append(
                lab.backend.replay_table("doomed", Bounds(), raw=False, headers=False, progress=progress)
            )
        )
        reader.start()
        assert first_chunk.wait(10)
        lab.delete_topic("doomed")  # while the replay is between chunks
        assert "doomed" not in set(lab.topics()["name"])
        assert list(folder.glob("*/*.parquet"))  # the reader's files are still there
        deleted.set()
        reader.join(10)
        (table,) = result
        assert sorted(table.column("offset").to_pylist()) == list(range(600))  # type: ignore[attr-defined]
        assert not folder.exists()  # gone with the last reader
        with pytest.raises(UnknownTopicError):
            lab.replay("doomed")


def test_a_topic_created_again_waits_for_readers_of_the_deleted_one_and_starts_empty(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("again", config={"retention.ms": -1})
        _sealed_segments(lab, "again", rounds=2, per_round=50)
        snapshot = lab.backend.broker.log("again", 0).snapshot()  # a reader mid-query
        lab.delete_topic("again")
        threading.Timer(0.3, snapshot.release).start()
        lab.create_topic("again")  # waits for the reader, then reuses the folder
        assert lab.offsets("again")["high_watermark"].tolist() == [0]
        with lab.producer() as p:
            p.send("again", value={"new": True})
        lab.roll("again")
        assert lab.replay("again")["new"].tolist() == [True]
    with streamlab.connect(tmp_path) as lab:  # nothing of the old incarnation comes back
        assert lab.replay("again")["offset"].tolist() == [0]


def test_a_reader_that_never_finishes_makes_creating_the_topic_again_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlab.broker import topics

    monkeypatch.setattr(topics, "RECREATE_WAIT_S", 0.2)
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("held", config={"retention.ms": -1})
        _sealed_segments(lab, "held", rounds=1, per_round=10)
        snapshot = lab.backend.broker.log("held", 0).snapshot()
        lab.delete_topic("held")
        with pytest.raises(TopicExistsError, match="reads that began before"):
            lab.create_topic("held")
        snapshot.release()
        lab.create_topic("held")
        assert lab.offsets("held")["high_watermark"].tolist() == [0]


def test_folders_of_topics_the_catalog_does_not_know_are_removed_on_open(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("kept", config={"retention.ms": -1})
        lab.create_topic("ghost", config={"retention.ms": -1})
        _sealed_segments(lab, "ghost", rounds=1, per_round=10)
    ghost = tmp_path / "topics" / "ghost"
    leftover = tmp_path / "left.parquet"
    shutil.copy(next(ghost.glob("0/*.parquet")), leftover)
    with streamlab.connect(tmp_path) as lab:
        lab.delete_topic("ghost")
    # as if a crash had interrupted the deletion: files without a catalog entry
    (ghost / "0").mkdir(parents=True)
    shutil.copy(leftover, ghost / "0" / "00000000000000000000.parquet")
    with streamlab.connect(tmp_path) as lab:
        assert not ghost.exists()
        assert set(lab.topics()["name"]) == {"kept"}
        lab.create_topic("ghost")
        assert lab.offsets("ghost")["high_watermark"].tolist() == [0]
