"""Bad input raises the same StreamlabError subclass on every backend, and writes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import streamlab
from streamlab import TopicPartition
from streamlab.errors import (
    ClosedError,
    ConfigError,
    InvalidOffsetError,
    InvalidPartitionsError,
    InvalidTopicError,
    RecordTooLargeError,
    SerializationError,
    StreamlabError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownTopicError,
)


@pytest.mark.parametrize("name", ["", "..", "has space", "slash/no", "ü", "x" * 250])
def test_invalid_topic_names(lab: streamlab.Lab, name: str) -> None:
    with pytest.raises(InvalidTopicError):
        lab.create_topic(name)


def test_topic_errors(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with pytest.raises(TopicExistsError):
        lab.create_topic(topic)
    with pytest.raises(InvalidPartitionsError):
        lab.create_topic(topic + "-zero", partitions=0)
    with pytest.raises(ConfigError):
        lab.create_topic(topic + "-typo", config={"retention.msec": 1})
    with pytest.raises(UnknownTopicError, match="create_topic"):
        lab.offsets(topic + "-missing")
    with pytest.raises(UnknownTopicError):
        lab.delete_topic(topic + "-missing")
    names = set(lab.topics()["name"])
    assert topic in names and not {topic + "-zero", topic + "-typo"} & names


def test_producer_rejects_bad_records_without_writing(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    with lab.producer() as p:
        with pytest.raises(UnknownTopicError):
            p.send(topic + "-missing", value=1)
        with pytest.raises(UnknownPartitionError):
            p.send(topic, value=1, partition=2)
        with pytest.raises(UnknownPartitionError):
            p.send(topic, value=1, partition=-1)
        with pytest.raises(RecordTooLargeError, match=r"max\.message\.bytes"):
            p.send(topic, value="x" * 2_000_000)
        with pytest.raises(SerializationError, match="object"):
            p.send(topic, value=object())
        with pytest.raises(SerializationError):
            p.send(topic, key={1, 2}, value=1)
        with pytest.raises(SerializationError):
            p.send(topic, value=1, headers={"h": 5})  # type: ignore[dict-item]
        with pytest.raises(ConfigError):
            p.send(topic, value=1, timestamp="yesterday-ish")
        assert p.send(topic, value="fine", partition=0).result(10).offset == 0
    assert lab.offsets(topic)["high_watermark"].tolist() == [1, 0]


def test_send_many_validates_every_row_first(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    import pandas as pd

    topic = make_topic()
    df = pd.DataFrame({"k": ["a", "b", "c"], "text": ["short", "x" * 2_000_000, "short"]})
    with lab.producer() as p:
        with pytest.raises(RecordTooLargeError):
            p.send_many(topic, df, key="k")
        with pytest.raises(ConfigError, match="not in the DataFrame"):
            p.send_many(topic, df, key="nope")
        with pytest.raises(UnknownTopicError):
            p.send_many(topic + "-missing", df.iloc[:1])
    assert lab.offsets(topic)["high_watermark"].tolist() == [0]


def test_consumer_rejects_bad_offsets_and_partitions(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    tp = TopicPartition(topic, 0)
    with lab.consumer([topic]) as c:
        for bad in (-1, 1.5, "3", True):
            with pytest.raises(InvalidOffsetError):
                c.seek(tp, bad)  # type: ignore[arg-type]
        with pytest.raises(StreamlabError, match="not assigned"):
            c.seek(TopicPartition(topic, 3), 0)
        with pytest.raises(ConfigError):
            c.poll(timeout=0, max_records=0)
        with pytest.raises(StreamlabError, match="group"):
            c.commit()
        with pytest.raises(ConfigError):
            c.seek_to_timestamp("not a time")
    with lab.consumer() as c, pytest.raises(UnknownPartitionError):
        c.assign([TopicPartition(topic, 9)])
    with pytest.raises(UnknownTopicError):
        lab.consumer([topic + "-missing"])
    with pytest.raises(ConfigError):
        lab.consumer([topic], auto_offset_reset="first")  # type: ignore[arg-type]


def test_closed_clients_say_so(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    p = lab.producer()
    p.close()
    p.close()
    with pytest.raises(ClosedError, match="closed"):
        p.send(topic, value=1)
    c = lab.consumer([topic])
    c.close()
    c.close()
    with pytest.raises(ClosedError):
        c.poll(timeout=0)


def test_a_closed_lab_says_so(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    p = lab.producer()
    lab.close()
    with pytest.raises(ClosedError, match="connect"):
        lab.topics()
    with pytest.raises(ClosedError):
        p.send(topic, value=1)
