"""Replay into pandas and SQL over sealed and active data together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import pytest

import streamlab
from streamlab import datasets
from streamlab.errors import InvalidOffsetError, UnknownPartitionError

T0 = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def clicks(lab: streamlab.Lab, make_topic: Callable[..., str]) -> tuple[str, pd.DataFrame]:
    topic = make_topic(partitions=3, retention_ms=-1)
    df = datasets.clickstream(3000)
    with lab.producer() as p:
        p.send_many(topic, df.iloc[:2000], key="user", timestamp="ts")
        lab.roll(topic)  # the first 2000 sealed into Parquet, the rest active
        p.send_many(topic, df.iloc[2000:], key="user", timestamp="ts")
    return topic, df


def test_replay_reads_sealed_and_active_with_typed_columns(
    lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]
) -> None:
    topic, df = clicks
    assert lab.backend.broker.catalog.segments(topic, 0), "expected sealed Parquet segments"
    out = lab.replay(topic)
    assert len(out) == 3000
    assert list(out.columns[:4]) == ["partition", "offset", "timestamp", "key"]
    assert str(out["timestamp"].dt.tz) == "UTC"
    assert out["amount"].sum() == pytest.approx(df["amount"].sum())
    assert sorted(out["event_id"]) == sorted(df["event_id"])
    assert out.groupby("partition")["offset"].apply(lambda s: list(s) == list(range(len(s)))).all()
    assert out.groupby("key")["partition"].nunique().max() == 1
    assert isinstance(out["key"].iloc[0], str)


def test_replay_by_offset_and_time_ranges(lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]) -> None:
    topic, df = clicks
    part = lab.replay(topic, start=10, end=20, partitions=[1])
    assert list(part["offset"]) == list(range(10, 20))
    assert set(part["partition"]) == {1}
    start, end = df["ts"].iloc[500], df["ts"].iloc[2500]
    window = lab.replay(topic, start=start.isoformat(), end=end.to_pydatetime())
    expected = df[(df["ts"] >= start) & (df["ts"] < end)]
    assert sorted(window["event_id"]) == sorted(expected["event_id"])
    assert lab.replay(topic, start=10**9).empty


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


def test_replay_of_an_empty_topic(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    out = lab.replay(make_topic())
    assert out.empty and {"partition", "offset", "timestamp", "key"} <= set(out.columns)


def test_sql_over_every_topic(lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]) -> None:
    topic, df = clicks
    revenue = lab.sql(
        f"SELECT key, sum(amount) AS revenue FROM {topic} WHERE event = 'purchase' GROUP BY key ORDER BY key"
    )
    expected = df[df["event"] == "purchase"].groupby("user")["amount"].sum().sort_index()
    assert list(revenue["key"]) == list(expected.index)
    assert revenue["revenue"].tolist() == pytest.approx(expected.tolist())
    counts = lab.sql(f'SELECT partition, max("offset") + 1 AS n FROM {topic} GROUP BY partition ORDER BY partition')
    assert counts["n"].tolist() == lab.offsets(topic)["high_watermark"].tolist()


def test_sql_sees_new_records_immediately(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    assert lab.sql(f"SELECT count(*) AS n FROM {topic}")["n"][0] == 0
    with lab.producer() as p:
        p.send(topic, value={"x": 1}).result(10)
    assert lab.sql(f"SELECT sum(x) AS s FROM {topic}")["s"][0] == 1


def test_replay_bad_bounds(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    with pytest.raises(InvalidOffsetError):
        lab.replay(topic, start=-1)
    with pytest.raises(InvalidOffsetError):
        lab.replay(topic, start="not a time")
    with pytest.raises(UnknownPartitionError):
        lab.replay(topic, partitions=[5])


def test_replay_of_mixed_formats_returns_every_value(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    sent: list[object] = [b"\x00\x01", "text", {"a": 1}, [1, 2], None]
    with lab.producer() as p:
        for i, v in enumerate(sent):
            p.send(topic, value=v, key=b"bytes-key" if i % 2 else "str-key")
    out = lab.replay(topic)
    # The object is spread into fields; the values that are not objects stay in "value"
    # and say why in "value_error" (null where the fields hold the value).
    assert out["value"].tolist() == [b"\x00\x01", "text", None, [1, 2], None]
    assert out["a"].fillna(0).tolist() == [0, 0, 1, 0, 0]
    assert out["value_error"].fillna("-").tolist() == ["not JSON", "not JSON", "-", "not a JSON object", "-"]
    assert out["key"].tolist() == ["str-key", b"bytes-key", "str-key", b"bytes-key", "str-key"]
    raw = lab.replay(topic, raw=True)
    assert raw["value"].tolist() == [b"\x00\x01", "text", '{"a":1}', "[1,2]", None]


def test_replay_with_a_progress_bar_returns_the_same_rows(
    lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame], capsys: pytest.CaptureFixture[str]
) -> None:
    topic, _ = clicks
    plain = lab.replay(topic, progress=False)
    shown = lab.replay(topic, progress=True)
    pd.testing.assert_frame_equal(plain, shown)
    err = capsys.readouterr().err
    assert f"replay {topic}" in err and "3000/3000" in err
