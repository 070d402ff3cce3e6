"""``lab.browse``: a filtered page of a topic, the same on every backend."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

import streamlab
from streamlab import datasets
from streamlab.errors import ConfigError, InvalidOffsetError, QueryError, UnknownPartitionError


@pytest.fixture
def clicks(lab: streamlab.Lab, make_topic: Callable[..., str]) -> tuple[str, pd.DataFrame]:
    topic = make_topic(partitions=3, retention_ms=-1)
    df = datasets.clickstream(600)
    with lab.producer() as p:
        p.send_many(topic, df, key="user", timestamp="ts")
    return topic, df


def _ids(frame: pd.DataFrame) -> list[tuple[int, int]]:
    return [(int(p), int(o)) for p, o in zip(frame["partition"], frame["offset"], strict=True)]


def test_where_filters_decoded_fields_in_partition_offset_order(
    lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]
) -> None:
    topic, _ = clicks
    everything = lab.replay(topic, raw=True, headers=True)
    wanted = everything[(everything["amount"] > 30) & (everything["device"] == "mobile")]
    got = lab.browse(topic, where="amount > 30 AND device = 'mobile'", limit=1000)
    assert _ids(got) == _ids(wanted) and len(got) > 3
    assert list(got.columns) == list(everything.columns)  # replay's columns, the stored value text with them
    assert got["value"].str.startswith("{").all() and got["headers"].tolist() == [{}] * len(got)
    first = lab.browse(topic, where="amount > 30 AND device = 'mobile'", limit=3)
    assert _ids(first) == _ids(wanted)[:3]
    assert len(lab.browse(topic)) == 100  # the default page
    assert _ids(lab.browse(topic, where='"offset" < 2', partitions=[2, 0])) == [(0, 0), (0, 1), (2, 0), (2, 1)]


def test_pages_continue_after_the_last_row_until_the_end(lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]) -> None:
    topic, _ = clicks
    everything = lab.replay(topic)
    wanted = everything[everything["event"] == "page_view"]
    pages, after = [], None
    while True:
        page = lab.browse(topic, where="event = 'page_view'", limit=70, after=after)
        if page.empty:
            break
        assert len(page) <= 70
        pages.append(page)
        after = (int(page["partition"].iloc[-1]), int(page["offset"].iloc[-1]))
    assert _ids(pd.concat(pages)) == _ids(wanted)
    assert len(pages) == -(-len(wanted) // 70)


def test_search_is_case_insensitive_over_key_and_value_text(
    lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame], make_topic: Callable[..., str]
) -> None:
    topic, df = clicks
    everything = lab.replay(topic, raw=True)
    user = str(df["user"].iloc[7])
    in_value = everything["value"].str.lower().str.contains("tablet")
    assert _ids(lab.browse(topic, search="TaBlEt", limit=1000)) == _ids(everything[in_value])
    assert _ids(lab.browse(topic, search=user.upper(), limit=1000)) == _ids(everything[everything["key"] == user])
    mixed = make_topic()
    with lab.producer() as p:
        p.send(mixed, value=b"\x00\xffbinary Needle", key=b"k1")
        p.send(mixed, value="plain text", key="needle-key", headers={"h": "v"})
        p.send(mixed, value={"note": "no match"}, key="k3")
        p.send(mixed, value="Zürich nEEdle", key=None)
    found = lab.browse(mixed, search="needle")
    assert found["offset"].tolist() == [0, 1, 3]
    assert found["value"].tolist() == [b"\x00\xffbinary Needle", "plain text", "Zürich nEEdle"]
    assert found["headers"].tolist()[1] == {"h": b"v"}
    assert lab.browse(mixed, search="zürich")["offset"].tolist() == [3]


def test_latest_n_offsets_and_times(lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]) -> None:
    topic, df = clicks
    ends = dict(zip(lab.offsets(topic)["partition"], lab.offsets(topic)["high_watermark"], strict=True))
    latest = lab.browse(topic, start=-5)
    assert _ids(latest) == [(p, o) for p in range(3) for o in range(int(ends[p]) - 5, int(ends[p]))]
    assert _ids(lab.browse(topic, start=-5, where="device = 'desktop'")) == _ids(latest[latest["device"] == "desktop"])
    assert _ids(lab.browse(topic, start=10, end=13, partitions=[1])) == [(1, 10), (1, 11), (1, 12)]
    start, end = df["ts"].iloc[200], df["ts"].iloc[260]
    window = lab.browse(topic, start=start.isoformat(), end=end.to_pydatetime(), limit=1000)
    expected = df[(df["ts"] >= start) & (df["ts"] < end)]
    assert sorted(window["event_id"]) == sorted(expected["event_id"])
    assert lab.browse(topic, start="2100-01-01").empty


def test_bad_arguments_are_streamlab_errors(lab: streamlab.Lab, clicks: tuple[str, pd.DataFrame]) -> None:
    topic, _ = clicks
    with pytest.raises(QueryError, match="syntax error"):
        lab.browse(topic, where="amount >")
    with pytest.raises(QueryError, match="amout"):
        lab.browse(topic, where="amout > 3")
    with pytest.raises(QueryError, match="syntax error"):
        lab.browse(topic, where="true; DROP TABLE x")
    with pytest.raises(QueryError, match="one expression"):
        lab.browse(topic, where="true) UNION SELECT 1 WHERE (true")
    with pytest.raises(QueryError):
        lab.browse(topic, where="device > 3")  # DuckDB cannot compare text with a number
    with pytest.raises(ConfigError):
        lab.browse(topic, limit=0)
    with pytest.raises(InvalidOffsetError):
        lab.browse(topic, after=(0,))  # type: ignore[arg-type]
    with pytest.raises(UnknownPartitionError):
        lab.browse(topic, partitions=[7])
    empty = lab.browse(topic, where="amount > 1e9")
    assert empty.empty and list(empty.columns[:4]) == ["partition", "offset", "timestamp", "key"]
