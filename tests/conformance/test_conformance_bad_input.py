"""Bad input raises the same StreamlabError subclass on every backend, and writes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import pytest

import streamlab
from streamlab import OffsetAndMetadata, TopicPartition
from streamlab.errors import (
    ClosedError,
    ConfigError,
    InvalidOffsetError,
    InvalidPartitionsError,
    InvalidTimestampError,
    InvalidTopicError,
    OffsetOutOfRangeError,
    OffsetResetWarning,
    QueryError,
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


def test_producer_rejects_bad_records_without_writing(
    lab: streamlab.Lab, make_topic: Callable[..., str], backend: str
) -> None:
    topic = make_topic(partitions=2)
    with lab.producer() as p:
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


def test_send_many_validates_every_row_first(lab: streamlab.Lab, make_topic: Callable[..., str], backend: str) -> None:
    import pandas as pd

    topic = make_topic()
    df = pd.DataFrame({"k": ["a", "b", "c"], "text": ["short", "x" * 2_000_000, "short"]})
    with lab.producer() as p:
        with pytest.raises(RecordTooLargeError):
            p.send_many(topic, df, key="k")
        with pytest.raises(ConfigError, match="not in the DataFrame"):
            p.send_many(topic, df, key="nope")
    assert lab.offsets(topic)["high_watermark"].tolist() == [0]


def test_a_producers_first_send_creates_an_unknown_topic(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    """As a Kafka producer's does on a cluster with auto.create.topics.enable (every
    backend here has it on, with num.partitions 1)."""
    topic = make_topic() + "-auto"
    with lab.producer() as p:
        assert p.send(topic, value={"first": True}).result(timeout=15).offset == 0
        p.send_many(topic + "-many", pd.DataFrame({"n": [1, 2]}))
    assert lab.offsets(topic)["high_watermark"].tolist() == [1]
    assert lab.offsets(topic + "-many")["high_watermark"].tolist() == [2]
    with pytest.raises(InvalidTopicError):
        lab.producer().send("bad name!", value=1)


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


# Ranges are Kafka's (issue #10): offsets are int64 and non-negative, timestamps are ones
# replay can represent, text is valid Unicode, and SQL DuckDB refuses is a QueryError.


@pytest.mark.parametrize("bad", [2**63, 2**64, -1, True, 1.5, "3", None])
def test_offsets_outside_kafkas_int64_are_refused(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str], bad: object
) -> None:
    topic = make_topic()
    tp = TopicPartition(topic, 0)
    group = make_group()
    with lab.consumer(group=group, enable_auto_commit=False) as c:
        c.assign([tp])
        with pytest.raises(InvalidOffsetError, match="2\\*\\*63"):
            c.commit({tp: bad})  # type: ignore[dict-item]
        with pytest.raises(InvalidOffsetError):
            c.commit({tp: OffsetAndMetadata(bad)})  # type: ignore[arg-type]
        with pytest.raises(InvalidOffsetError):
            c.seek(tp, bad)  # type: ignore[arg-type]
        assert c.committed([tp]) == {tp: None}
    with pytest.raises(InvalidOffsetError):
        lab.reset_offsets(group, {tp: bad}, dry_run=False)


def test_a_committed_offset_beyond_the_end_resets_with_a_warning(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic = make_topic()
    tp = TopicPartition(topic, 0)
    group = make_group()
    with lab.producer() as p:
        for i in range(3):
            p.send(topic, value=i).result(10)
    with lab.consumer(group=group, enable_auto_commit=False) as c:
        c.assign([tp])
        c.commit({tp: 2**63 - 1})  # Kafka's brokers take any int64 offset
        assert c.committed([tp]) == {tp: 2**63 - 1}
    # The next member finds it out of range (Kafka's OFFSET_OUT_OF_RANGE): it starts over
    # from auto_offset_reset and says so, instead of silently skipping what comes next.
    with (
        pytest.warns(OffsetResetWarning, match=str(2**63 - 1)),
        lab.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False) as c,
    ):
        values = []
        deadline = time.monotonic() + 20
        while len(values) < 3 and time.monotonic() < deadline:
            values += [r.value for r in c.poll(timeout=0.5)]
        assert values == [0, 1, 2]
        assert c.position(tp) == 3


@pytest.mark.parametrize(
    "bad",
    [2**62, 2**63, -5, float("nan"), float("inf"), 253_402_300_800_000, datetime(1969, 12, 31, tzinfo=UTC)],
    ids=["2**62", "2**63", "negative", "nan", "inf", "year-10000", "before-1970"],
)
def test_timestamps_replay_cannot_represent_are_refused_at_send(
    lab: streamlab.Lab, make_topic: Callable[..., str], bad: object
) -> None:
    topic = make_topic()
    with lab.producer() as p, pytest.raises(InvalidTimestampError, match="timestamp"):
        p.send(topic, value=1, timestamp=bad)
    assert lab.offsets(topic)["high_watermark"].tolist() == [0]
    assert InvalidTimestampError.kafka_code == 32  # INVALID_TIMESTAMP


def test_the_timestamp_range_is_replayed_exactly(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(retention_ms=-1)
    last = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    with lab.producer() as p:
        # 1, not 0: librdkafka reads a timestamp of 0 as "now"
        p.send(topic, value="first", timestamp=1).result(10)
        p.send(topic, value="last", timestamp=last).result(10)
        p.send(topic, value="max", timestamp=253_402_300_799_999).result(10)
    df = lab.replay(topic)
    assert df["timestamp"].tolist() == [pd.Timestamp(1, unit="ms", tz="UTC"), pd.Timestamp(last), pd.Timestamp(last)]
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        records = []
        deadline = time.monotonic() + 20
        while len(records) < 3 and time.monotonic() < deadline:
            records += c.poll(timeout=0.5)
    assert [r.time for r in records] == [datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), last, last]


@pytest.mark.parametrize(
    "column",
    [
        [pd.Timestamp("2024-01-01", tz="UTC"), pd.NaT],
        ["2024-01-01", "not a time"],
        [pd.Timestamp("1960-01-01", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC")],
    ],
    ids=["NaT", "text", "before-1970"],
)
def test_send_many_refuses_a_timestamp_column_replay_cannot_represent(
    lab: streamlab.Lab, make_topic: Callable[..., str], column: list[object]
) -> None:
    topic = make_topic()
    df = pd.DataFrame({"ts": column, "v": [1, 2]})
    with lab.producer() as p, pytest.raises(InvalidTimestampError, match="'ts'"):
        p.send_many(topic, df, timestamp="ts")
    assert lab.offsets(topic)["high_watermark"].tolist() == [0]


@pytest.mark.parametrize("field", ["value", "key", "header", "header name"])
def test_a_lone_surrogate_is_a_serialization_error_naming_the_field(
    lab: streamlab.Lab, make_topic: Callable[..., str], field: str
) -> None:
    topic = make_topic()
    bad = "ok \ud800"
    record: dict[str, object] = {
        "value": {"value": bad},
        "key": {"value": 1, "key": bad},
        "header": {"value": 1, "headers": {"h": bad}},
        "header name": {"value": 1, "headers": {bad: b"x"}},
    }[field]
    with lab.producer() as p:
        with pytest.raises(SerializationError, match=f"{field.split()[0]}.*not valid Unicode"):
            p.send(topic, **record)  # type: ignore[arg-type]
        assert p.send(topic, value="fine").result(10).offset == 0
    assert lab.offsets(topic)["high_watermark"].tolist() == [1]


@pytest.mark.parametrize("group", ["", "\ud800", 5])
def test_group_ids_are_non_empty_unicode_str(lab: streamlab.Lab, make_topic: Callable[..., str], group: object) -> None:
    topic = make_topic()
    with pytest.raises(ConfigError, match="group"):
        lab.consumer([topic], group=group)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statement", "match"),
    [("", "no SQL statement"), ("  -- only a comment", "no SQL statement"), ("selec 1", "Parser Error"),
     ("SELECT nope FROM {topic}", "nope"), ("SELECT * FROM no_such_table", "no_such_table"), (None, "str")],
)  # fmt: skip
def test_sql_that_duckdb_refuses_is_a_query_error(
    lab: streamlab.Lab, make_topic: Callable[..., str], statement: str | None, match: str
) -> None:
    topic = make_topic()
    with pytest.raises(QueryError, match=match):
        lab.sql(statement.format(topic=f'"{topic}"') if statement else statement)  # type: ignore[arg-type]
    assert lab.sql(f'SELECT count(*) AS n FROM "{topic}"')["n"].tolist() == [0]


def test_a_timestamp_out_of_range_on_the_wire_is_invalid_timestamp(
    serve_bootstrap: str, make_name: Callable[[str], str]
) -> None:
    """A Kafka client sending a timestamp replay cannot represent gets INVALID_TIMESTAMP (32)
    from `streamlab serve`, and nothing is stored."""
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = make_name("wire-ts")
    admin = AdminClient({"bootstrap.servers": serve_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10)[topic].result(timeout=10)
    producer = ck.Producer({"bootstrap.servers": serve_bootstrap, "retries": 0, "enable.idempotence": False})
    reports: list[object] = []
    for ts in (2**62, 1_700_000_000_000):
        producer.produce(topic, value=b"v", timestamp=ts, on_delivery=lambda err, msg: reports.append(err))
        producer.flush(10)
    assert len(reports) == 2
    error, fine = reports
    assert fine is None
    assert isinstance(error, ck.KafkaError) and error.code() == ck.KafkaError.INVALID_TIMESTAMP
    with streamlab.connect("kafka://" + serve_bootstrap) as lab:
        assert lab.offsets(topic)["high_watermark"].tolist() == [1]


def test_send_many_takes_int_milliseconds_like_send_and_refuses_bad_text(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(retention_ms=-1)
    with lab.producer() as p:
        p.send_many(topic, pd.DataFrame({"ts": [1_700_000_000_000, 253_402_300_799_999], "v": [1, 2]}), timestamp="ts")
        bad = pd.DataFrame({"v": pd.Series(["ok", "x\ud800"], dtype=object)})
        with pytest.raises(SerializationError, match="not valid Unicode"):
            p.send_many(topic, bad)
        with pytest.raises(SerializationError, match="key is not valid Unicode"):
            p.send_many(topic, bad.assign(k=bad["v"], v=1), key="k")
        with pytest.raises(InvalidTimestampError, match="row 1"):
            p.send_many(topic, pd.DataFrame({"ts": [1.0, float("nan")], "v": [1, 2]}), timestamp="ts")
    assert lab.replay(topic)["timestamp"].tolist() == [
        pd.Timestamp(1_700_000_000_000, unit="ms", tz="UTC"),
        pd.Timestamp(253_402_300_799_999, unit="ms", tz="UTC"),
    ]


def test_times_beyond_int64_or_not_finite_are_invalid_timestamps(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic = make_topic()
    with lab.consumer([topic]) as c:
        for bad in (2**70, -(2**70), float("nan"), float("inf")):
            with pytest.raises(InvalidTimestampError):
                c.seek_to_timestamp(bad)
            with pytest.raises(InvalidTimestampError):
                lab.reset_offsets(make_group(), to=bad, topics=[topic])


def test_a_committed_offset_beyond_the_end_with_reset_none_raises(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic = make_topic()
    tp = TopicPartition(topic, 0)
    group = make_group()
    with lab.producer() as p:
        p.send(topic, value=1).result(10)
    with lab.consumer(group=group, enable_auto_commit=False) as c:
        c.assign([tp])
        c.commit({tp: 100})
    with (
        lab.consumer([topic], group=group, auto_offset_reset="none", enable_auto_commit=False) as c,
        pytest.raises(OffsetOutOfRangeError),
    ):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert c.poll(timeout=0.5) == []
