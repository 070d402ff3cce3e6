"""Topic auto-creation on the embedded broker: what a producer sees against a default Kafka broker."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import streamlab
from streamlab.errors import ConfigError, InvalidTopicError, UnknownTopicError


def test_first_send_creates_the_topic_with_num_partitions(tmp_path: Path) -> None:
    lab = streamlab.connect(tmp_path / "lab")
    try:
        with lab.producer() as p:
            meta = p.send("fresh", value={"n": 1}).result(timeout=10)
            assert (meta.topic, meta.partition, meta.offset) == ("fresh", 0, 0)
            p.send_many("fresh-df", pd.DataFrame({"n": [1, 2]}))
            with pytest.raises(InvalidTopicError):
                p.send("not a topic!", value=1)
        rows = lab.topics().set_index("name")
        assert rows.loc["fresh", "partitions"] == 1 and rows.loc["fresh", "records"] == 1
        assert rows.loc["fresh-df", "records"] == 2
        assert "not a topic!" not in rows.index
        with pytest.raises(UnknownTopicError):
            lab.consumer(["never-sent"])  # only producers create, as librdkafka's consumer
    finally:
        lab.close()

    lab = streamlab.connect(tmp_path / "other", num_partitions=3)
    try:
        with lab.producer() as p:
            p.send("three", value=1).result(timeout=10)
        assert lab.topics().set_index("name").loc["three", "partitions"] == 3
    finally:
        lab.close()


def test_with_auto_creation_off_an_unknown_topic_is_an_error(tmp_path: Path) -> None:
    lab = streamlab.connect(tmp_path / "lab", auto_create_topics=False)
    try:
        with lab.producer() as p:
            with pytest.raises(UnknownTopicError, match="create_topic"):
                p.send("missing", value=1)
            with pytest.raises(UnknownTopicError):
                p.send_many("missing", pd.DataFrame({"n": [1]}))
        assert lab.topics().empty
    finally:
        lab.close()


def test_broker_settings_are_checked_and_belong_to_the_broker(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"num\.partitions"):
        streamlab.connect(tmp_path / "lab", num_partitions=0)
    with pytest.raises(ConfigError, match="server"):
        streamlab.connect("kafka://127.0.0.1:9", auto_create_topics=False)
