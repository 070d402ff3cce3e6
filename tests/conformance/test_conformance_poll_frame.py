"""``consumer.poll_frame``: micro-batches shaped like ``replay``, the same on every backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd

import streamlab
from streamlab import TopicPartition

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _clicks(lab: streamlab.Lab, topic: str, n: int) -> None:
    with lab.producer() as p:
        for i in range(n):
            value = {"page": f"/p{i % 4}", "amount": i * 10, "ok": i % 3 == 0}
            p.send(
                topic, value=value, key=f"user-{i % 5}", headers={"src": "nb"}, timestamp=START + timedelta(seconds=i)
            )


def _frames(consumer: streamlab.Consumer, n: int, **options: bool) -> list[pd.DataFrame]:
    """poll_frame batches of at most 7 records until ``n`` records came (bounded in time)."""
    frames, seen, deadline = [], 0, time.monotonic() + 30
    while seen < n and time.monotonic() < deadline:
        frame = consumer.poll_frame(timeout=1.0, max_records=7, **options)
        assert len(frame) <= 7
        if len(frame):
            frames.append(frame)
            seen += len(frame)
    assert seen == n
    return frames


def test_poll_frame_batches_add_up_to_the_replay(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic = make_topic(partitions=3)
    _clicks(lab, topic, 40)
    with lab.consumer([topic], group=make_group(), auto_offset_reset="earliest") as c:
        frames = _frames(c, 40)
    for frame in frames:  # each batch is shaped alone: the same columns and dtypes as the replay
        assert list(frame.columns) == ["topic", "partition", "offset", "timestamp", "key", "page", "amount", "ok"]
        assert (frame["topic"] == topic).all()
        assert str(frame["timestamp"].dt.tz) == "UTC" and frame["amount"].dtype == "int64"
    together = pd.concat(frames).sort_values(["partition", "offset"], ignore_index=True)
    replayed = lab.replay(topic)
    pd.testing.assert_frame_equal(together.drop(columns="topic"), replayed)
    assert together["amount"].sum() == sum(i * 10 for i in range(40))
    assert together["timestamp"].min() == START


def test_poll_frame_headers_and_raw_are_as_in_replay(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic = make_topic()
    _clicks(lab, topic, 5)
    with lab.consumer([topic], group=make_group(), auto_offset_reset="earliest") as c:
        frame = pd.concat(_frames(c, 5, headers=True, raw=True), ignore_index=True)
    replayed = lab.replay(topic, headers=True, raw=True)
    pd.testing.assert_frame_equal(frame.drop(columns="topic"), replayed)
    assert frame["headers"].tolist() == [{"src": b"nb"}] * 5
    assert frame["value"][0] == '{"page":"/p0","amount":0,"ok":true}'


def test_an_empty_poll_gives_the_standard_columns(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic = make_topic()
    with lab.consumer([topic], group=make_group(), auto_offset_reset="earliest") as c:
        frame = c.poll_frame(timeout=0.2)
    assert frame.empty
    assert list(frame.columns) == ["topic", "partition", "offset", "timestamp", "key", "value"]
    assert frame["offset"].dtype == "int64" and str(frame["timestamp"].dt.tz) == "UTC"


def test_commit_after_a_frame_resumes_after_it(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(), make_group()
    _clicks(lab, topic, 12)
    with lab.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False) as c:
        first = pd.concat(_frames(c, 12), ignore_index=True)
        c.commit()
        assert c.committed([TopicPartition(topic, 0)]) == {TopicPartition(topic, 0): 12}
    _clicks(lab, topic, 3)  # offsets 12..14
    with lab.consumer([topic], group=group, auto_offset_reset="earliest") as c:
        after = pd.concat(_frames(c, 3), ignore_index=True)
    assert first["offset"].tolist() == list(range(12))
    assert after["offset"].tolist() == [12, 13, 14]
    assert after["amount"].tolist() == [0, 10, 20]
