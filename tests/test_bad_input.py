"""Bad input gets a specific error and leaves the broker and its data untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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


@pytest.mark.parametrize("name", ["", ".", "..", "has space", "slash/no", "ü", "x" * 250, "tab\t"])
def test_invalid_topic_names(lab: streamlab.Lab, name: str) -> None:
    with pytest.raises(InvalidTopicError):
        lab.create_topic(name)
    assert lab.topics().empty


def test_topic_name_rules_accept_kafka_legal_names(lab: streamlab.Lab) -> None:
    lab.create_topic("a.b_c-D9")
    lab.create_topic("x" * 249)
    assert len(lab.topics()) == 2


def test_every_error_is_a_streamlab_error_with_a_kafka_code() -> None:
    from streamlab.errors import KAFKA_ERROR_CODES

    assert KAFKA_ERROR_CODES[UnknownTopicError] == 3
    assert KAFKA_ERROR_CODES[RecordTooLargeError] == 10
    assert KAFKA_ERROR_CODES[InvalidTopicError] == 17
    assert all(issubclass(cls, StreamlabError) for cls in KAFKA_ERROR_CODES)


def test_topic_errors(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with pytest.raises(TopicExistsError):
        lab.create_topic(topic)
    with pytest.raises(InvalidPartitionsError):
        lab.create_topic("zero", partitions=0)
    with pytest.raises(InvalidPartitionsError):
        lab.create_partitions(topic, 1)
    with pytest.raises(ConfigError, match="unknown topic config"):
        lab.create_topic("typo", config={"retention.msec": 1})
    with pytest.raises(ConfigError):
        lab.create_topic("bad", config={"retention.ms": "soon"})
    with pytest.raises(UnknownTopicError, match="create_topic"):
        lab.offsets("missing")
    with pytest.raises(UnknownTopicError):
        lab.delete_topic("missing")
    assert list(lab.topics()["name"]) == [topic]


def test_producer_rejects_bad_records_without_writing(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2, max_message_bytes=2000)
    with lab.producer() as p:
        with pytest.raises(InvalidTopicError):  # an unknown topic is created (tests/test_topic_auto_creation.py)
            p.send("not a topic!", value=1)
        with pytest.raises(UnknownPartitionError):
            p.send(topic, value=1, partition=2)
        with pytest.raises(UnknownPartitionError):
            p.send(topic, value=1, partition=-1)
        with pytest.raises(RecordTooLargeError, match=r"max\.message\.bytes"):
            p.send(topic, value="x" * 5000)
        with pytest.raises(SerializationError, match="object"):
            p.send(topic, value=object())
        with pytest.raises(SerializationError):
            p.send(topic, value={"set": {1, 2}})
        with pytest.raises(SerializationError):
            p.send(topic, value=1, headers={"h": 5})  # type: ignore[dict-item]
        with pytest.raises(ConfigError):
            p.send(topic, value=1, timestamp="yesterday-ish")
        assert p.send(topic, value="fine", partition=0).result(10).offset == 0
    assert lab.offsets(topic)["high_watermark"].tolist() == [1, 0]


def test_send_many_validates_every_row_first(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    import pandas as pd

    topic = make_topic(max_message_bytes=500)
    df = pd.DataFrame({"k": ["a", "b", "c"], "text": ["short", "x" * 1000, "short"]})
    with lab.producer() as p:
        with pytest.raises(RecordTooLargeError):
            p.send_many(topic, df, key="k")
        with pytest.raises(ConfigError, match="not in the DataFrame"):
            p.send_many(topic, df, key="nope")
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
    with pytest.raises(UnknownPartitionError):
        lab.consumer().assign([TopicPartition(topic, 9)])
    with pytest.raises(UnknownTopicError):
        lab.consumer(["missing"])
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
    with pytest.raises(ClosedError):
        c.poll(timeout=0)


def test_closed_lab(tmp_path: Path) -> None:
    lab = streamlab.connect(tmp_path)
    lab.create_topic("t")
    p = lab.producer()
    lab.close()
    with pytest.raises(ClosedError, match="connect"):
        lab.topics()
    with pytest.raises(ClosedError):
        p.send("t", value=1)
    with streamlab.connect(tmp_path) as again:
        assert list(again.topics()["name"]) == ["t"]


def test_arguments_of_the_wrong_type_get_streamlab_errors(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        with pytest.raises(InvalidTopicError, match="a topic name is a str"):
            p.send(["orders"], value=1)  # type: ignore[arg-type]
        with pytest.raises(SerializationError, match="pandas DataFrame"):
            p.send_many(topic, [{"a": 1}])  # type: ignore[arg-type]
    with lab.consumer([topic], auto_offset_reset="earliest") as c, pytest.raises(ConfigError, match="seconds"):
        c.poll(timeout="1")  # type: ignore[arg-type]
    assert lab.offsets(topic)["high_watermark"].sum() == 0, "nothing was written"
