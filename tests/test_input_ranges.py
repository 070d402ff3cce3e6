"""Input outside Kafka's ranges gets a StreamlabError and loses nothing (issue #10, items 4,
6, 8 and 10), on the embedded broker. What every backend shares is in
tests/conformance/test_conformance_bad_input.py."""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

import streamlab
from streamlab import OffsetAndMetadata, TopicPartition
from streamlab.broker.offsets import commit
from streamlab.broker.produce import append
from streamlab.errors import (
    CatalogWarning,
    ClosedError,
    InvalidOffsetError,
    InvalidTimestampError,
    QueryError,
    SerializationError,
    StreamlabError,
    UnknownTopicError,
)
from streamlab.model.schema import build_batch
from streamlab.model.timeparse import record_timestamp, to_ms
from streamlab.model.types import MAX_TIMESTAMP_MS, RecordMetadata, ms_to_datetime


def test_an_int64_overflowing_commit_is_refused_and_the_directory_reopens(tmp_path: Path) -> None:
    """The finding: commit({tp: 2**63}) was accepted, then close() failed and every later
    connect() of the directory failed."""
    lab = streamlab.connect(tmp_path / "lab")
    lab.create_topic("t")
    tp = TopicPartition("t", 0)
    with lab.consumer(group="g", enable_auto_commit=False) as c:
        c.assign([tp])
        with pytest.raises(InvalidOffsetError, match="2\\*\\*63"):
            c.commit({tp: 2**63})
        with pytest.raises(InvalidOffsetError):
            c.commit({tp: OffsetAndMetadata(2**63)})
        c.commit({tp: 2**63 - 1})  # the largest int64 is Kafka's, and the catalog's
    lab.close()
    with streamlab.connect(tmp_path / "lab") as again, again.consumer(group="g") as c:
        assert c.committed([tp]) == {tp: 2**63 - 1}


def test_the_broker_never_stores_an_offset_beyond_int64(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    """The last line, under every client (the wire server commits through it too)."""
    topic = make_topic()
    tp = TopicPartition(topic, 0)
    for bad in (2**63, -(2**63) - 1, 1.0):
        with pytest.raises(InvalidOffsetError):
            commit(lab.backend.broker, "g", {tp: OffsetAndMetadata(bad)})  # type: ignore[arg-type]
    commit(lab.backend.broker, "g", {tp: OffsetAndMetadata(-1)})  # what an OffsetCommit may carry: "no offset"
    assert lab.backend.broker.catalog.committed("g") == {(topic, 0): (-1, "")}


def test_metadata_of_a_commit_must_be_unicode_text(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    tp = TopicPartition(topic, 0)
    with lab.consumer(group="g", enable_auto_commit=False) as c:
        c.assign([tp])
        with pytest.raises(SerializationError, match="metadata"):
            c.commit({tp: OffsetAndMetadata(0, "\ud800")})
        with pytest.raises(InvalidOffsetError, match="metadata"):
            c.commit({tp: OffsetAndMetadata(0, 5)})  # type: ignore[arg-type]
        assert c.committed([tp]) == {tp: None}


def test_a_seek_past_the_end_resets_with_a_warning(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    tp = TopicPartition(topic, 0)
    with lab.producer() as p:
        p.send(topic, value="a").result(10)
    with lab.consumer([topic], auto_offset_reset="latest") as c:
        c.seek(tp, 2**63 - 1)
        with pytest.warns(streamlab.errors.OffsetResetWarning, match="beyond its end"):
            assert c.poll(timeout=0) == []
        assert c.position(tp) == 1
        with lab.producer() as p:
            p.send(topic, value="b").result(10)
        assert [r.value for r in c.poll(timeout=5)] == ["b"]


def test_a_committed_offset_beyond_the_end_raises_with_reset_none(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    tp = TopicPartition(topic, 0)
    with lab.consumer(group="g", enable_auto_commit=False) as c:
        c.assign([tp])
        c.commit({tp: 5})
    with (
        lab.consumer([topic], group="g", auto_offset_reset="none") as c,
        pytest.raises(streamlab.errors.OffsetOutOfRangeError),
    ):
        c.poll(timeout=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (np.int64(5), 5),
        (1.9, 1),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), MAX_TIMESTAMP_MS),
        ("9999-12-31T23:59:59.999Z", MAX_TIMESTAMP_MS),
        ("2024-03-01T12:00:00.123", 1_709_294_400_123),
    ],
)
def test_record_timestamps_in_range_are_exact(value: object, expected: int) -> None:
    assert record_timestamp(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("-inf"), np.float64("inf")])
def test_non_finite_times_are_invalid_timestamps_everywhere(value: float) -> None:
    with pytest.raises(InvalidTimestampError, match="finite"):
        to_ms(value)


def test_record_time_keeps_the_milliseconds_of_far_years() -> None:
    assert ms_to_datetime(MAX_TIMESTAMP_MS) == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert RecordMetadata("t", 0, 0, 1).time == datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)


def test_the_broker_refuses_a_batch_with_a_timestamp_replay_cannot_represent(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    """Every write path (the producers, the wire server) appends through broker/produce.py."""
    topic = make_topic()

    def batch(timestamps: list[int]) -> object:
        n = len(timestamps)
        return build_batch(base_offset=0, timestamps=timestamps, keys=[None] * n, key_formats=[0] * n,
                           values=[b"v"] * n, value_formats=[1] * n)  # fmt: skip

    for bad in ([1, 2**62], [-5], [MAX_TIMESTAMP_MS + 1]):
        with pytest.raises(InvalidTimestampError) as info:
            append(lab.backend.broker, topic, 0, batch(bad), sync=False)  # type: ignore[arg-type]
        assert info.value.kafka_code == 32 and info.value.topic == topic
    assert append(lab.backend.broker, topic, 0, batch([0, MAX_TIMESTAMP_MS]), sync=False) == 0  # type: ignore[arg-type]
    assert lab.replay(topic)["timestamp"].dt.year.tolist() == [1970, 9999]


def test_deleting_a_topic_while_sending_fails_the_futures_with_a_streamlab_error(lab: streamlab.Lab) -> None:
    """The finding: ~1000 futures failed with a raw OSError (EBADF) after delete_topic."""
    lab.create_topic("busy", partitions=4)
    futures: list[Future[RecordMetadata]] = []
    refused: list[BaseException] = []
    started, stop = threading.Event(), threading.Event()

    def send() -> None:
        with lab.producer(linger_ms=1) as p:
            while not stop.is_set():
                try:
                    futures.append(p.send("busy", value={"n": len(futures)}))
                except StreamlabError as exc:
                    refused.append(exc)
                    return
                if not started.is_set() and futures[0].done():  # records are being stored
                    started.set()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert started.wait(10)
        lab.delete_topic("busy")
    finally:
        stop.set()
        sender.join(30)
    outcomes = Counter(type(f.exception(30)).__name__ for f in futures)
    assert set(outcomes) <= {"NoneType", "UnknownTopicError"}, outcomes
    assert outcomes["NoneType"] >= 1
    assert all(isinstance(exc, UnknownTopicError) for exc in refused)
    failed = [f.exception() for f in futures if f.exception() is not None]
    assert all("deleted" in str(exc) or "unknown topic" in str(exc) for exc in failed)


def test_the_empty_statement_and_duckdb_errors_are_query_errors(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    with pytest.raises(QueryError, match="no SQL statement"):
        lab.sql("")
    with pytest.raises(QueryError, match="Binder Error") as info:
        lab.sql(f'SELECT nope FROM "{topic}"')
    assert isinstance(info.value.__cause__, duckdb.Error)
    assert isinstance(info.value, ValueError) and info.value.kafka_code == 42


def test_a_catalog_row_that_is_no_topic_name_is_skipped_on_reopen(tmp_path: Path) -> None:
    """The finding: a catalog row named ``../../x`` made the broker create directories
    outside the data directory on reopen. It is reported and skipped; the rest opens."""
    data = tmp_path / "deep" / "lab"
    with streamlab.connect(data) as lab:
        lab.create_topic("fine")
        with lab.producer() as p:
            p.send("fine", value=1).result(10)
    with duckdb.connect(str(data / "catalog.duckdb")) as con:
        row = con.execute("SELECT config, created_ms FROM topics WHERE name = 'fine'").fetchone()
        assert row is not None
        for name, partitions in (("../../x", 1), (str(tmp_path / "abs"), 1), ("huge", 10_001)):
            con.execute("INSERT INTO topics (name, partitions, config, created_ms) VALUES (?, ?, ?, ?)",
                        [name, partitions, *row])  # fmt: skip
            con.execute("INSERT INTO partitions (topic, partition, log_start_offset) VALUES (?, 0, 0)", [name])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if data not in (p, *p.parents))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lab = streamlab.connect(data)
    try:
        messages = [str(w.message) for w in caught if issubclass(w.category, CatalogWarning)]
        assert len(messages) == 3, [str(w.message) for w in caught]
        assert any("'../../x'" in m and "illegal characters" in m for m in messages)
        assert any("'huge'" in m and "partitions" in m for m in messages)
        assert all(str(data / "catalog.duckdb") in m for m in messages)
        assert lab.topics()["name"].tolist() == ["fine"]
        assert lab.replay("fine")["value"].tolist() == [1]
    finally:
        lab.close()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if data not in (p, *p.parents))
    assert after == before  # nothing created outside the data directory
    assert not (data / "topics" / "huge").exists()


def test_a_closed_lab_says_it_is_closed(tmp_path: Path) -> None:
    lab = streamlab.connect(tmp_path)
    lab.create_topic("t")
    lab.close()
    for call in (lambda: lab.rebalances("g"), lambda: lab.groups(), lambda: lab.lag("g"), lambda: lab.topics()):
        with pytest.raises(ClosedError):
            call()
