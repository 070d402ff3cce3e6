"""Producing and consuming through the embedded broker: what a notebook user relies on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import pytest

import streamlab
from streamlab import RecordMetadata, TopicPartition
from streamlab.model.partitioner import partition_for_key


def test_values_come_back_as_they_were_sent(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    sent = [b"\x00raw", "text é", {"id": 1, "nested": {"a": [1, 2]}}, [1, "two"], 3.5, None, True]
    with lab.producer() as p:
        futures = [p.send(topic, value=v, key=f"k{i}") for i, v in enumerate(sent)]
        metas = [f.result(timeout=10) for f in futures]
    assert [m.offset for m in metas] == list(range(len(sent)))
    assert all(isinstance(m, RecordMetadata) and m.topic == topic and m.partition == 0 for m in metas)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        records = c.poll(timeout=5, max_records=100)
    assert [r.value for r in records] == sent
    assert [r.key for r in records] == [f"k{i}" for i in range(len(sent))]
    assert all(isinstance(r.key, str) for r in records)
    assert isinstance(records[0].value, bytes)


def test_keys_of_each_type_round_trip(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    keys = [b"bytes-key", "str-key", 42, None]
    with lab.producer() as p:
        for k in keys:
            p.send(topic, value="v", key=k)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        assert [r.key for r in c.poll(timeout=5)] == keys


def test_headers_timestamp_and_partition_are_kept(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=4)
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with lab.producer() as p:
        md = p.send(topic, value="x", headers={"src": "nb", "raw": b"\x01"}, timestamp=when, partition=2).result(10)
    assert (md.partition, md.offset) == (2, 0)
    assert md.time == when
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        (rec,) = c.poll(timeout=5)
    assert rec.headers == {"src": b"nb", "raw": b"\x01"}
    assert rec.timestamp == int(when.timestamp() * 1000)
    assert rec.time == when
    assert rec.partition == 2


def test_a_key_always_lands_on_the_same_partition(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=5)
    with lab.producer() as p:
        futures = [(f"user-{i % 37}", p.send(topic, value=i, key=f"user-{i % 37}")) for i in range(500)]
        placed = {(key, f.result(10).partition) for key, f in futures}
    by_key: dict[str, set[int]] = {}
    for key, part in placed:
        by_key.setdefault(key, set()).add(part)
    assert all(len(parts) == 1 for parts in by_key.values())
    assert all(parts == {partition_for_key(k.encode(), 5)} for k, parts in by_key.items())
    assert len({p for parts in by_key.values() for p in parts}) > 1


def test_order_per_partition_is_the_order_sent(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    with lab.producer(linger_ms=0) as p:
        for i in range(3000):
            p.send(topic, value=i, key=f"k{i % 7}")
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        records = []
        while len(records) < 3000:
            batch = c.poll(timeout=5, max_records=700)
            assert batch, "consumer stalled"
            assert len(batch) <= 700
            records.extend(batch)
    per_key: dict[str, list[int]] = {}
    for r in records:
        per_key.setdefault(r.key, []).append(r.value)
    assert all(vals == sorted(vals) for vals in per_key.values())
    assert sorted(r.value for r in records) == list(range(3000))


def test_unkeyed_records_are_spread(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    with lab.producer() as p:
        parts = {p.send(topic, value=i).result(10).partition for i in range(30)}
    assert parts == {0, 1, 2}


def test_send_many_from_a_dataframe(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    df = pd.DataFrame(
        {
            "user": [f"u{i % 5}" for i in range(50)],
            "amount": [i * 1.5 for i in range(50)],
            "page": [f"/p/{i}" for i in range(50)],
            "ts": pd.date_range("2026-01-01", periods=50, freq="min", tz="UTC"),
        }
    )
    with lab.producer() as p:
        placed = p.send_many(topic, df, key="user", timestamp="ts")
    assert list(placed.index) == list(df.index)
    assert placed.groupby("partition")["offset"].apply(lambda s: sorted(s) == list(range(len(s)))).all()
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        records = c.poll(timeout=5, max_records=1000)
    assert len(records) == 50
    first = min(records, key=lambda r: r.timestamp)
    assert first.key == "u0" and first.value == {"amount": 0.0, "page": "/p/0"}
    assert first.time == datetime(2026, 1, 1, tzinfo=UTC)
    assert all(r.partition == partition_for_key(r.key.encode(), 3) for r in records)


def test_poll_waits_for_data_then_returns_nothing_after_timeout(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    with lab.consumer([topic]) as c:
        assert c.poll(timeout=0.2) == []
        with lab.producer() as p:
            p.send(topic, value="late").result(10)
        assert [r.value for r in c.poll(timeout=5)] == ["late"]


def test_latest_is_the_default_reset(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        p.send(topic, value="old").result(10)
    with lab.consumer([topic]) as c:
        assert c.poll(timeout=0.2) == []
        assert c.position(TopicPartition(topic, 0)) == 1


def test_seek_position_and_seek_to_timestamp(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    tp0 = TopicPartition(topic, 0)
    with lab.producer() as p:
        for i in range(10):
            p.send(topic, value=i, partition=0, timestamp=1_700_000_000_000 + i * 1000)
            p.send(topic, value=i, partition=1, timestamp=1_700_000_000_000 + i * 1000)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        c.seek(tp0, 7)
        assert c.position(tp0) == 7
        c.assign([tp0])
        c.seek(tp0, 7)
        assert [r.offset for r in c.poll(timeout=5)] == [7, 8, 9]
        c.seek_to_timestamp(datetime.fromtimestamp(1_700_000_004.5, tz=UTC))
        assert c.position(tp0) == 5
        c.seek_to_timestamp("2000-01-01T00:00:00Z")
        assert c.position(tp0) == 0
        c.seek_to_timestamp(1_800_000_000_000)
        assert c.position(tp0) == 10
        c.seek_to_beginning()
        assert c.poll(timeout=5, max_records=2)[0].offset == 0
        c.seek_to_end()
        assert c.position(tp0) == 10


def test_group_commit_and_resume(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    tp = TopicPartition(topic, 0)
    with lab.producer() as p:
        for i in range(20):
            p.send(topic, value=i)
    with lab.consumer([topic], group="g", auto_offset_reset="earliest", enable_auto_commit=False) as c:
        got = c.poll(timeout=5, max_records=8)
        assert [r.value for r in got] == list(range(8))
        c.commit()
        assert c.committed([tp]) == {tp: 8}
        c.commit({tp: 5})
    with lab.consumer([topic], group="g", auto_offset_reset="earliest") as c:
        assert c.poll(timeout=5, max_records=1)[0].value == 5


def test_auto_commit_on_close(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        for i in range(5):
            p.send(topic, value=i)
    with lab.consumer([topic], group="auto", auto_offset_reset="earliest") as c:
        assert len(c.poll(timeout=5)) == 5
    with lab.consumer([topic], group="auto", auto_offset_reset="earliest") as c:
        assert c.poll(timeout=0.2) == []


def test_new_partitions_are_picked_up_by_a_subscription(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        assert c.assignment() == {TopicPartition(topic, 0)}
        lab.create_partitions(topic, 3)
        with lab.producer() as p:
            p.send(topic, value="new", partition=2).result(10)
        assert [r.partition for r in c.poll(timeout=5)] == [2]
        assert c.assignment() == {TopicPartition(topic, p) for p in range(3)}


def test_connect_twice_in_one_process_shares_the_broker(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "shared"
    a = streamlab.connect(path)
    b = streamlab.connect(path)
    a.create_topic("x")
    assert list(b.topics()["name"]) == ["x"]
    a.close()
    assert list(b.topics()["name"]) == ["x"]
    b.close()
    with streamlab.connect(path) as c:
        assert list(c.topics()["name"]) == ["x"]


@pytest.mark.parametrize("acks", ["all", 1, 0])
def test_acks_settings_all_store_the_record(lab: streamlab.Lab, make_topic: Callable[..., str], acks: object) -> None:
    topic = make_topic()
    with lab.producer(acks=acks) as p:
        assert p.send(topic, value="v").result(10).offset == 0
    assert lab.offsets(topic)["high_watermark"].tolist() == [1]


def test_send_and_send_many_store_the_same_json(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    row = {"page": "/product/1?q=a/b", "path": "C:\\dir\\", "amount": 1.5, "missing": None}
    with lab.producer() as p:
        p.send(topic, value=row, key="k", timestamp=0).result(10)
        p.send_many(topic, pd.DataFrame([{"k": "k", **row}]), key="k")
    raw = lab.replay(topic, raw=True)["value"].tolist()
    assert raw[0] == raw[1]
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        assert [r.value for r in c.poll(timeout=5)] == [row, row]


def test_nan_is_stored_as_null_like_json_stringify(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        p.send(topic, value={"x": float("nan")}).result(10)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        assert c.poll(timeout=5)[0].value == {"x": None}


def test_send_futures_work_with_concurrent_futures_helpers(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    import concurrent.futures as cf

    topic = make_topic()
    seen: list[int] = []
    with lab.producer(linger_ms=20) as p:
        futures = [p.send(topic, value=i) for i in range(100)]
        futures[5].add_done_callback(lambda f: seen.append(f.result().offset))
        done, pending = cf.wait(futures, timeout=10)
        assert len(done) == 100 and not pending
        assert sorted(f.result(timeout=0).offset for f in cf.as_completed(futures, timeout=10)) == list(range(100))
        assert all(isinstance(f, cf.Future) and f.done() and f.exception() is None for f in futures)
    assert seen == [5]


def test_a_failed_write_fails_every_future_of_its_batch(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer(linger_ms=50) as p:
        futures = [p.send(topic, value=i) for i in range(10)]
        lab.delete_topic(topic)  # the batch's topic vanishes before the sender writes it
        for f in futures:
            with pytest.raises(streamlab.errors.UnknownTopicError):
                f.result(timeout=10)


def test_a_batch_of_json_values_comes_back_value_by_value(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    sent = [{"a": "x,y", "b": [1, {"c": "]"}]}, [1, "two"], "a ] string", 3.5, -7, True, False, {"é": "ü"}, [], {}]
    with lab.producer() as p:
        for v in sent:
            p.send(topic, value=v)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        records = c.poll(timeout=5, max_records=100)
    assert [r.value for r in records] == sent
    assert [r.offset for r in records] == list(range(len(sent)))
    assert all(r.headers == {} and r.key is None for r in records)


def test_failed_futures_reach_waiters_and_callbacks(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    import concurrent.futures as cf

    topic = make_topic()
    failures: list[BaseException | None] = []
    with lab.producer(linger_ms=50) as p:
        futures = [p.send(topic, value=i) for i in range(5)]
        futures[2].add_done_callback(lambda f: failures.append(f.exception()))
        assert futures[3].cancel() and futures[3].cancelled()
        lab.delete_topic(topic)
        done, pending = cf.wait([f for f in futures if not f.cancelled()], timeout=10)
        assert len(done) == 4 and not pending
    assert len(failures) == 1 and isinstance(failures[0], streamlab.errors.UnknownTopicError)
    assert isinstance(futures[0].exception(timeout=0), streamlab.errors.UnknownTopicError)
    with pytest.raises(cf.CancelledError):
        futures[3].result(timeout=0)
