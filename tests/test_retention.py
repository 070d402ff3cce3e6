"""Retention and compaction: old data goes in whole segments, offsets never move."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import streamlab
from streamlab import TopicPartition
from streamlab.errors import OffsetOutOfRangeError, RetentionWarning

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _produce(
    lab: streamlab.Lab, topic: str, values: list[object], *, ts: int, keys: list[object] | None = None
) -> None:
    with lab.producer() as p:
        for i, v in enumerate(values):
            p.send(topic, value=v, key=None if keys is None else keys[i], timestamp=ts + i, partition=0)


def test_retention_ms_deletes_whole_old_segments(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(retention_ms=24 * HOUR)
    _produce(lab, topic, list(range(10)), ts=T0)
    lab.roll(topic)
    _produce(lab, topic, list(range(10, 20)), ts=T0 + 48 * HOUR)
    lab.roll(topic)
    _produce(lab, topic, list(range(20, 25)), ts=T0 + 60 * HOUR)
    result = lab.apply_retention(now=T0 + 62 * HOUR)
    assert result.segments_deleted == 1
    offsets = lab.offsets(topic)
    assert offsets.loc[0, "log_start_offset"] == 10
    assert offsets.loc[0, "high_watermark"] == 25
    assert list(lab.replay(topic)["value"]) == list(range(10, 25))
    assert len(lab.backend.broker.catalog.segments(topic, 0)) == 1


def test_expired_active_segment_is_sealed_and_deleted(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(retention_ms=HOUR)
    _produce(lab, topic, ["a", "b"], ts=T0)
    lab.apply_retention(now=T0 + 2 * HOUR)
    assert lab.offsets(topic).loc[0].tolist() == [0, 2, 2]
    with lab.producer() as p:
        assert p.send(topic, value="c").result(10).offset == 2


def test_retention_bytes_keeps_the_newest_segments(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(retention_ms=-1)
    for i in range(4):
        _produce(lab, topic, [f"{i}-{j}" * 50 for j in range(20)], ts=T0 + i)
        lab.roll(topic)
    sizes = [s.bytes for s in lab.backend.broker.catalog.segments(topic, 0)]
    lab.alter_topic_config(topic, {"retention.bytes": sum(sizes[-2:])})
    assert lab.apply_retention().segments_deleted == 2
    assert lab.offsets(topic).loc[0, "log_start_offset"] == 40


def test_consumer_before_log_start_falls_back_to_reset(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(retention_ms=HOUR)
    tp = TopicPartition(topic, 0)
    _produce(lab, topic, list(range(5)), ts=T0)
    lab.roll(topic)
    _produce(lab, topic, list(range(5, 8)), ts=T0 + 10 * HOUR)
    with lab.consumer([topic], group="g", auto_offset_reset="earliest", enable_auto_commit=False) as c:
        c.seek(tp, 2)
        lab.apply_retention(now=T0 + 10 * HOUR + 1)
        assert [r.value for r in c.poll(timeout=5)] == [5, 6, 7]
    with lab.consumer(auto_offset_reset="none") as c:
        c.assign([tp])
        c.seek(tp, 1)
        with pytest.raises(OffsetOutOfRangeError, match=r"retained range 5\.\.8"):
            c.poll(timeout=1)


def test_compaction_keeps_the_latest_per_key_with_offsets(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(cleanup_policy="compact", delete_retention_ms=HOUR)
    keys = ["a", "b", "a", "c", "b", "a", "d"]
    values: list[object] = [1, 2, 3, 4, 5, 6, 7]
    _produce(lab, topic, values, ts=T0, keys=keys)
    lab.roll(topic)
    _produce(lab, topic, [None, 9], ts=T0 + 10, keys=["c", "d"])  # tombstone for c; newer d
    lab.roll(topic)
    _produce(lab, topic, [10], ts=T0 + 20, keys=["e"])  # active, never compacted
    removed = lab.apply_retention(now=T0 + 100).records_compacted
    assert removed == 5
    df = lab.replay(topic)
    assert list(zip(df["offset"], df["key"], df["value"], strict=True)) == [
        (4, "b", 5),
        (5, "a", 6),
        (7, "c", None),
        (8, "d", 9),
        (9, "e", 10),
    ]
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        assert [r.offset for r in c.poll(timeout=5)] == [4, 5, 7, 8, 9]
        c.seek(TopicPartition(topic, 0), 6)  # compacted away: reading resumes at the next one
        assert [r.offset for r in c.poll(timeout=5)] == [7, 8, 9]
    # Once delete.retention.ms has passed, the tombstone itself goes.
    lab.apply_retention(now=T0 + 2 * HOUR)
    assert list(lab.replay(topic)["key"]) == ["b", "a", "d", "e"]
    assert lab.offsets(topic).loc[0, "high_watermark"] == 10


def test_compaction_survives_reopen(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path))
    with streamlab.connect(path) as lab:
        lab.create_topic("c", config={"cleanup.policy": "compact"})
        _produce(lab, "c", [1, 2, 3], ts=T0, keys=["k", "k", "j"])
        lab.roll("c")
        lab.apply_retention(now=T0 + 1000)
    with streamlab.connect(path) as lab:
        assert list(lab.replay("c")["value"]) == [2, 3]
        with lab.producer() as p:
            assert p.send("c", value=4, key="k").result(10).offset == 3


def test_retention_runs_when_a_segment_is_sealed(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(retention_ms=HOUR, segment_bytes=4096)
    _produce(lab, topic, ["old" * 100] * 30, ts=T0)  # long expired, sealed as it fills
    with lab.producer() as p:
        for _ in range(30):
            p.send(topic, value="new" * 100, partition=0).result(10)
    offsets = lab.offsets(topic)
    assert offsets.loc[0, "log_start_offset"] >= 30
    assert set(lab.replay(topic)["value"]) == {"new" * 100}


def test_send_many_warns_when_every_row_is_already_past_retention(tmp_path: Path) -> None:
    """Historical rows into a 7-day topic would vanish at the next seal: the producer says so."""
    with streamlab.connect(tmp_path) as lab, lab.producer() as p:
        lab.create_topic("week", partitions=1)
        lab.create_topic("forever", partitions=1, config={"retention.ms": -1})
        old = pd.DataFrame({"ts": pd.to_datetime(["2020-01-01", "2020-01-02"], utc=True), "n": [1, 2]})
        with pytest.warns(RetentionWarning, match="retention.ms"):
            p.send_many("week", old, timestamp="ts")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            p.send_many("forever", old, timestamp="ts")  # kept forever: nothing to say
            p.send_many("week", old.assign(ts=pd.Timestamp.now(tz="UTC")), timestamp="ts")  # recent rows
        assert len(lab.replay("week")) == 4
