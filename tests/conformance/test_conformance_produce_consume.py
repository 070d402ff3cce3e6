"""Producing and consuming: what a notebook relies on, the same on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

import streamlab
from streamlab import RecordMetadata, TopicPartition
from streamlab.kafka.mock_cluster import MockCluster
from streamlab.model.partitioner import partition_for_key

VALUES = [b"\x00raw", "text é", {"id": 1, "nested": {"a": [1, 2]}}, [1, "two"], 3.5, None, True, 7, ""]
KEYS = [b"bytes-key", "str-key", 42, None, {"compound": [1, 2]}]


def test_every_value_and_key_type_comes_back_as_sent(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        futures = [p.send(topic, value=v, key=KEYS[i % len(KEYS)]) for i, v in enumerate(VALUES)]
        metas = [f.result(timeout=10) for f in futures]
    assert [m.offset for m in metas] == list(range(len(VALUES)))
    assert all(isinstance(m, RecordMetadata) and m.topic == topic and m.partition == 0 for m in metas)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        records = c.poll(timeout=10, max_records=100)
    assert [r.value for r in records] == VALUES
    assert [r.key for r in records] == [KEYS[i % len(KEYS)] for i in range(len(VALUES))]
    assert [type(r.value) for r in records] == [type(v) for v in VALUES]
    assert all(r.headers == {} for r in records)  # the format headers of kafka:// are not shown


def test_headers_timestamp_and_partition_are_kept(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=4)
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with lab.producer() as p:
        md = p.send(topic, value="x", headers={"src": "nb", "raw": b"\x01"}, timestamp=when, partition=2).result(10)
        pairs = p.send(topic, value="y", headers=[("a", "1"), ("b", b"2")], partition=2).result(10)
    assert (md.partition, md.offset, pairs.offset) == (2, 0, 1)
    assert md.time == when
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        first, second = c.poll(timeout=10)
    assert first.headers == {"src": b"nb", "raw": b"\x01"}
    assert second.headers == {"a": b"1", "b": b"2"}
    assert first.timestamp == int(when.timestamp() * 1000) and first.time == when
    assert first.partition == 2 and first.topic_partition == TopicPartition(topic, 2)


def test_a_key_always_lands_on_its_murmur2_partition(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=5)
    with lab.producer() as p:
        futures = [(f"user-{i % 37}", p.send(topic, value=i, key=f"user-{i % 37}")) for i in range(300)]
        placed = {(key, f.result(10).partition) for key, f in futures}
    assert all(part == partition_for_key(key.encode(), 5) for key, part in placed)
    assert len({part for _, part in placed}) == 5


def test_both_backends_place_every_key_on_the_same_partition(tmp_path: Path, mock_cluster: MockCluster) -> None:
    """The embedded broker hashes keys itself; librdkafka's murmur2_random does on kafka://."""
    keys = [f"customer-{i}" for i in range(200)] + ["", "é", "a" * 300]
    placements = []
    for target in (str(tmp_path / "lab"), "kafka://" + mock_cluster.bootstrap):
        with streamlab.connect(target) as lab:
            topic = f"placement-{'kafka' if target.startswith('kafka') else 'embedded'}-{tmp_path.name}"
            lab.create_topic(topic, partitions=7)
            with lab.producer() as p:
                futures = [p.send(topic, value=1, key=k) for k in keys]
                placements.append([f.result(10).partition for f in futures])
    assert placements[0] == placements[1]
    assert len(set(placements[0])) == 7


def test_order_per_partition_is_the_order_sent(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    with lab.producer(linger_ms=0) as p:
        for i in range(2000):
            p.send(topic, value=i, key=f"k{i % 7}")
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        records: list[streamlab.Record] = []
        while len(records) < 2000:
            batch = c.poll(timeout=10, max_records=700)
            assert batch, "consumer stalled"
            assert len(batch) <= 700
            records.extend(batch)
    per_key: dict[str, list[int]] = {}
    for r in records:
        per_key.setdefault(r.key, []).append(r.value)
    assert all(vals == sorted(vals) for vals in per_key.values())
    assert sorted(r.value for r in records) == list(range(2000))


def test_unkeyed_records_are_spread(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    with lab.producer() as p:
        parts = {p.send(topic, value=i).result(10).partition for i in range(60)}
    assert parts == {0, 1, 2}


def test_send_many_from_a_dataframe(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    df = pd.DataFrame(
        {
            "user": [f"u{i % 5}" for i in range(50)],
            "amount": [i * 1.5 for i in range(50)],
            "page": [f"/p/{i}" for i in range(50)],
            "ts": pd.date_range("2026-01-01", periods=50, freq="min", tz="UTC"),
        },
        index=range(100, 150),
    )
    with lab.producer() as p:
        placed = p.send_many(topic, df, key="user", timestamp="ts")
    assert list(placed.index) == list(df.index)
    assert list(placed.columns) == ["partition", "offset"]
    assert placed.groupby("partition")["offset"].apply(lambda s: sorted(s) == list(range(len(s)))).all()
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        records = c.poll(timeout=10, max_records=1000)
    assert len(records) == 50
    first = min(records, key=lambda r: r.timestamp)
    assert first.key == "u0" and first.value == {"amount": 0.0, "page": "/p/0"}
    assert first.time == datetime(2026, 1, 1, tzinfo=UTC)
    assert all(r.partition == partition_for_key(r.key.encode(), 3) for r in records)
    assert {(r.partition, r.offset) for r in records} == set(zip(placed["partition"], placed["offset"], strict=True))


def test_poll_waits_for_data_then_returns_nothing_after_timeout(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    with lab.consumer([topic]) as c:
        assert c.poll(timeout=0.2) == []
        with lab.producer() as p:
            p.send(topic, value="late").result(10)
        assert [r.value for r in c.poll(timeout=10)] == ["late"]


def test_latest_is_the_default_reset(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        p.send(topic, value="old").result(10)
    with lab.consumer([topic]) as c:
        assert c.position(TopicPartition(topic, 0)) == 1
        assert c.poll(timeout=0.3) == []
        assert c.position(TopicPartition(topic, 0)) == 1


def test_seek_position_and_seek_to_timestamp(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    tp0 = TopicPartition(topic, 0)
    with lab.producer() as p:
        for i in range(10):
            p.send(topic, value=i, partition=0, timestamp=1_700_000_000_000 + i * 1000)
            p.send(topic, value=i, partition=1, timestamp=1_700_000_000_000 + i * 1000)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        assert c.assignment() == {tp0, TopicPartition(topic, 1)}
        c.seek(tp0, 7)
        assert c.position(tp0) == 7
        c.assign([tp0])
        assert c.assignment() == {tp0}
        c.seek(tp0, 7)
        assert [r.offset for r in c.poll(timeout=10)] == [7, 8, 9]
        assert c.position(tp0) == 10
        c.seek_to_timestamp(datetime.fromtimestamp(1_700_000_004.5, tz=UTC))
        assert c.position(tp0) == 5
        assert c.poll(timeout=10, max_records=1)[0].value == 5
        c.seek_to_timestamp("2000-01-01T00:00:00Z")
        assert c.position(tp0) == 0
        c.seek_to_timestamp(1_800_000_000_000)
        assert c.position(tp0) == 10
        c.seek_to_beginning()
        assert c.poll(timeout=10, max_records=2)[0].offset == 0
        c.seek_to_end()
        assert c.position(tp0) == 10
        assert c.poll(timeout=0.2) == []


def test_assign_reads_only_the_partitions_given(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    with lab.producer() as p:
        for part in range(3):
            p.send(topic, value=part, partition=part).result(10)
    with lab.consumer(auto_offset_reset="earliest") as c:
        assert c.assignment() == set()
        c.assign([TopicPartition(topic, 1)])
        assert [(r.partition, r.value) for r in c.poll(timeout=10)] == [(1, 1)]


def test_acks_settings_all_store_the_record(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    for acks in ("all", 1, 0):
        with lab.producer(acks=acks) as p:  # type: ignore[arg-type]
            p.send(topic, value="v").result(10)
    assert lab.offsets(topic)["high_watermark"].tolist() == [3]
