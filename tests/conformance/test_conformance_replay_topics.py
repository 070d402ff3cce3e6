"""Replay into pandas, SQL, and looking at topics: the same on every backend."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

import streamlab
from streamlab import datasets
from streamlab.errors import InvalidOffsetError, UnknownPartitionError, UnknownTopicError


@pytest.fixture
def clicks(lab: streamlab.Lab, make_topic: Callable[..., str]) -> tuple[str, pd.DataFrame]:
    topic = make_topic(partitions=3)
    df = datasets.clickstream(1500)
    with lab.producer() as p:
        p.send_many(topic, df, key="user", timestamp="ts")
    return topic, df


def test_replay_has_typed_columns_in_partition_offset_order(
    lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]
) -> None:
    topic, df = clicks
    out = lab.replay(topic)
    assert len(out) == 1500
    assert list(out.columns[:4]) == ["partition", "offset", "timestamp", "key"]
    assert set(out.columns[4:]) == set(df.columns) - {"user", "ts"}
    assert str(out["timestamp"].dt.tz) == "UTC"
    assert out["amount"].sum() == pytest.approx(df["amount"].sum())
    assert sorted(out["event_id"]) == sorted(df["event_id"])
    assert out.groupby("partition")["offset"].apply(lambda s: list(s) == list(range(len(s)))).all()
    assert list(out["partition"]) == sorted(out["partition"])
    assert out.groupby("key")["partition"].nunique().max() == 1
    assert isinstance(out["key"].iloc[0], str)
    assert sorted(out["timestamp"]) == sorted(df["ts"])


def test_a_time_window_progress_bar_counts_the_window(
    lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame], capsys: pytest.CaptureFixture[str]
) -> None:
    topic, df = clicks
    start, end = df["ts"].iloc[300], df["ts"].iloc[1200]
    expected = int(((df["ts"] >= start) & (df["ts"] < end)).sum())
    window = lab.replay(topic, start=start.isoformat(), end=end.to_pydatetime(), progress=True)
    assert len(window) == expected
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"{expected}/{expected}" in bar and "100%" in bar, bar  # sized to the window, ends full


def test_replay_by_offset_and_by_time(lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]) -> None:
    topic, df = clicks
    part = lab.replay(topic, start=10, end=20, partitions=[1])
    assert list(part["offset"]) == list(range(10, 20))
    assert set(part["partition"]) == {1}
    start, end = df["ts"].iloc[300], df["ts"].iloc[1200]
    window = lab.replay(topic, start=start.isoformat(), end=end.to_pydatetime())
    expected = df[(df["ts"] >= start) & (df["ts"] < end)]
    assert sorted(window["event_id"]) == sorted(expected["event_id"])
    assert window["timestamp"].min() >= start and window["timestamp"].max() < end
    assert lab.replay(topic, start=10**9).empty
    assert lab.replay(topic, start="2100-01-01").empty


def test_replay_raw_and_headers(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        p.send(topic, value={"amount": 3, "offset": "field named like a column"}, key="k", headers={"h": "1"})
    out = lab.replay(topic, raw=True, headers=True)
    row = out.iloc[0]
    assert row["amount"] == 3
    assert row["value.offset"] == "field named like a column"
    assert row["value"] == '{"amount":3,"offset":"field named like a column"}'
    assert row["headers"] == {"h": b"1"}
    assert "value" not in lab.replay(topic).columns


def test_replay_of_mixed_values_gives_them_back_as_sent(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    sent = [b"\x01", "text", [1, 2], 5, None]
    with lab.producer() as p:
        for v in sent:
            p.send(topic, value=v, key=b"k")
    out = lab.replay(topic)
    assert list(out["value"]) == sent
    assert list(out["key"]) == [b"k"] * len(sent)


def test_replay_of_an_empty_topic(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    out = lab.replay(make_topic(partitions=2))
    assert out.empty and {"partition", "offset", "timestamp", "key"} <= set(out.columns)


def test_replay_bad_bounds(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    with pytest.raises(InvalidOffsetError):
        lab.replay(topic, start=-1)
    with pytest.raises(InvalidOffsetError):
        lab.replay(topic, start="not a time")
    with pytest.raises(UnknownPartitionError):
        lab.replay(topic, partitions=[5])
    with pytest.raises(UnknownTopicError):
        lab.replay("no-such-topic")


def test_sql_over_topics(lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]) -> None:
    topic, df = clicks
    table = f'"{topic}"'  # topic names with "-" need quoting in SQL
    revenue = lab.sql(
        f"SELECT key, sum(amount) AS revenue FROM {table} WHERE event = 'purchase' GROUP BY key ORDER BY key"
    )
    expected = df[df["event"] == "purchase"].groupby("user")["amount"].sum().sort_index()
    assert list(revenue["key"]) == list(expected.index)
    assert revenue["revenue"].tolist() == pytest.approx(expected.tolist())
    counts = lab.sql(f'SELECT partition, max("offset") + 1 AS n FROM {table} GROUP BY partition ORDER BY partition')
    assert counts["n"].tolist() == lab.offsets(topic)["high_watermark"].tolist()


def test_sql_gives_the_dtypes_replay_gives(lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]) -> None:
    topic, _ = clicks
    replayed = lab.replay(topic, end=5)
    queried = lab.sql(f'SELECT partition, "offset", timestamp, key, page FROM "{topic}" WHERE "offset" < 5')
    assert str(queried["timestamp"].dt.tz) == "UTC"
    for column in ["partition", "offset", "timestamp", "key", "page"]:
        assert queried[column].dtype == replayed[column].dtype, column


def test_topics_and_offsets(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    busy = make_topic(partitions=3, retention_ms=3_600_000)
    quiet = make_topic(partitions=2)
    with lab.producer() as p:
        for i in range(12):
            p.send(busy, value=i, partition=i % 3)
    offsets = lab.offsets(busy)
    assert list(offsets.columns) == ["partition", "log_start_offset", "high_watermark"]
    assert offsets.values.tolist() == [[0, 0, 4], [1, 0, 4], [2, 0, 4]]
    table = lab.topics()
    assert list(table.columns) == ["name", "partitions", "records", "bytes", "config"]
    rows = table.set_index("name")
    assert rows.loc[busy, "partitions"] == 3 and rows.loc[busy, "records"] == 12
    assert rows.loc[quiet, "partitions"] == 2 and rows.loc[quiet, "records"] == 0
    assert rows.loc[busy, "config"]["retention.ms"] == 3_600_000
    lab.delete_topic(quiet)
    assert quiet not in set(lab.topics()["name"])
    with pytest.raises(UnknownTopicError, match="create_topic"):
        lab.offsets(quiet)
