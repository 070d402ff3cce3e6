"""``poll_frame`` on the embedded broker: the same frame as ``replay`` for every kind of record."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

import streamlab
from streamlab.port.record_frames import records_frame

# Each set is one topic's values: JSON objects (spread into columns), a mix of formats
# (decoded cell by cell), objects with different fields, and values that are not objects.
VALUE_SETS = {
    "objects": [{"a": 1, "b": "x"}, {"a": 2, "b": None}, {"a": 3, "b": "z"}],
    "mixed": [b"\x00raw", "text", {"id": 1}, [1, 2], 3.5, None, True],
    "different-fields": [{"a": 1}, {"b": [1, 2]}, {"a": 2, "c": {"d": 1}}],
    "strings": ["one", "two", ""],
    "field-named-like-a-column": [{"offset": 5, "key": "k", "topic": "t"}],
}
KEYS = ["k", b"\x01", None, 7, {"c": 1}]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_a_frame_of_polled_records_equals_their_replay(
    lab: streamlab.Lab, make_topic: Callable[..., str], name: str
) -> None:
    topic = make_topic(partitions=2)
    with lab.producer() as p:
        for i, value in enumerate(VALUE_SETS[name]):
            p.send(topic, value=value, key=KEYS[i % len(KEYS)], partition=i % 2, headers={"h": str(i)})
    for options in ({}, {"raw": True, "headers": True}):
        with lab.consumer([topic], auto_offset_reset="earliest") as c:
            frame = c.poll_frame(timeout=5, max_records=100, **options)
        assert len(frame) == len(VALUE_SETS[name])
        pd.testing.assert_frame_equal(frame.drop(columns="topic"), lab.replay(topic, **options))


def test_records_of_several_topics_come_in_one_frame(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    clicks, users = make_topic(), make_topic()
    with lab.producer() as p:
        p.send(clicks, value={"page": "/a", "ms": 5})
        p.send(users, value={"user": "ann"}, key="u1")
        p.send(clicks, value={"page": "/b", "ms": 7})
    with lab.consumer([clicks, users], auto_offset_reset="earliest") as c:
        frame = c.poll_frame(timeout=5, max_records=10)
    assert frame["topic"].tolist() == sorted([clicks, clicks, users])
    assert list(frame.columns) == ["topic", "partition", "offset", "timestamp", "key", "page", "ms", "user"]
    by_topic = frame.set_index("topic")
    assert by_topic.loc[clicks, "page"].tolist() == ["/a", "/b"]
    assert by_topic.loc[users, "user"] == "ann" and pd.isna(by_topic.loc[users, "page"])


def test_no_records_give_an_empty_replay_frame() -> None:
    frame = records_frame([])
    assert list(frame.columns) == ["topic", "partition", "offset", "timestamp", "key", "value"]
    assert frame.empty and str(frame["timestamp"].dt.tz) == "UTC"
    assert list(records_frame([], headers=True).columns)[-1] == "headers"


def test_poll_frame_checks_its_arguments_as_poll_does(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.consumer([topic]) as c, pytest.raises(streamlab.errors.ConfigError, match="max_records"):
        c.poll_frame(timeout=0, max_records=0)
