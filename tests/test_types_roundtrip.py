"""DataFrame dtypes survive send_many → replay, before and after the segment is sealed.

A hypothesis property over frames with mixed dtypes and missing values, plus the cases
the property does not reach: what is refused, how naive datetimes are taken, values
other programs wrote whose fields disagree on types.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamlab
from streamlab.errors import SerializationError

TEXT = pd.StringDtype("pyarrow")
UTC_US = "datetime64[us, UTC]"
_topics = itertools.count()

# (strategy of one non-missing cell, whether the column may hold missing values, how the
# column is built from the cells, the dtype replay gives back with and without missing values)
INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
TEXTS = st.text(max_size=12)
AWARE = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC))
NAIVE = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))
KINDS: dict[str, tuple[st.SearchStrategy[Any], bool, Callable[[list[Any]], pd.Series], str, str]] = {
    "int64": (INT64, False, lambda cells: pd.Series(cells, dtype="int64"), "int64", "int64"),
    "Int64": (INT64, True, lambda cells: pd.Series(pd.array(cells, dtype="Int64")), "int64", "Int64"),
    "float": (FLOATS, True, lambda cells: pd.Series([np.nan if c is None else c for c in cells], dtype="float64"),
              "float64", "float64"),
    "bool": (st.booleans(), False, lambda cells: pd.Series(cells, dtype=bool), "bool", "bool"),
    "boolean": (st.booleans(), True, lambda cells: pd.Series(pd.array(cells, dtype="boolean")), "bool", "boolean"),
    "str": (TEXTS, True, lambda cells: pd.Series(cells, dtype=object), "text", "text"),
    "aware": (AWARE, True, lambda cells: pd.Series(pd.to_datetime(cells, utc=True)), UTC_US, UTC_US),
    "naive": (NAIVE, True, lambda cells: pd.Series(pd.to_datetime(cells)), UTC_US, UTC_US),
    "category": (st.sampled_from(["red", "green", "blue"]), True, lambda cells: pd.Series(pd.Categorical(cells)),
                 "text", "text"),
}  # fmt: skip


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, str]]:
    """A frame of 1-8 rows and 1-6 columns of mixed dtypes; each column has at least one
    value (a column with none has no type to carry: JSON's null has none)."""
    rows = draw(st.integers(1, 8))
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=6))
    columns: dict[str, pd.Series] = {}
    expected: dict[str, str] = {}
    for i, kind in enumerate(kinds):
        cell, nullable, build, plain, with_na = KINDS[kind]
        cells = draw(st.lists(st.one_of(st.none(), cell) if nullable else cell, min_size=rows, max_size=rows))
        if all(c is None for c in cells):
            cells[0] = draw(cell)
        name = f"c{i}_{kind}"
        columns[name] = build(cells)
        expected[name] = with_na if any(c is None for c in cells) else plain
    return pd.DataFrame(columns), expected


def _expected(column: pd.Series, dtype: str) -> pd.Series:
    if dtype == "text":
        return column.astype(object).where(column.notna(), None).astype(TEXT)
    if dtype == UTC_US:
        times = column.dt.tz_localize("UTC") if column.dt.tz is None else column
        return times.astype(UTC_US)
    return column.astype(dtype)


def _check(out: pd.DataFrame, df: pd.DataFrame, expected: dict[str, str]) -> None:
    assert len(out) == len(df)
    for name, dtype in expected.items():
        want = _expected(df[name], dtype).reset_index(drop=True)
        got = out[name].reset_index(drop=True)
        pd.testing.assert_series_equal(got, want, check_names=False, obj=f"column {name} ({dtype})")


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[streamlab.Lab]:
    """One embedded lab for every example of the property (opening one per example is slow)."""
    with streamlab.connect(tmp_path_factory.mktemp("roundtrip")) as lab:
        yield lab


@settings(max_examples=15, deadline=None)
@given(frame=frames())
def test_send_many_replay_round_trip_keeps_dtypes(
    shared_lab: streamlab.Lab, frame: tuple[pd.DataFrame, dict[str, str]]
) -> None:
    df, expected = frame
    topic = f"t{next(_topics)}"
    shared_lab.create_topic(topic, config={"retention.ms": -1})
    with shared_lab.producer() as p:
        p.send_many(topic, df)
    _check(shared_lab.replay(topic), df, expected)  # the active segment, expanded at query time
    shared_lab.roll(topic)
    _check(shared_lab.replay(topic), df, expected)  # the Parquet segment, expanded at seal time


def test_the_issue_frame_keeps_its_dtypes_through_sql_too(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(retention_ms=-1)
    df = pd.DataFrame(
        {
            "ts": [1733400000000, 1733400001000],
            "i": pd.array([1, None], dtype="Int64"),
            "b": [True, False],
            "f": [1.5, None],
            "s": ["x", None],
            "dt": pd.to_datetime(["2024-01-01T00:00Z", "2024-01-02T00:00Z"]),
            "c": pd.Categorical(["u", "v"]),
        }
    )
    with lab.producer() as p:
        p.send_many(topic, df, timestamp="ts")
    out = lab.replay(topic)
    assert {c: str(out[c].dtype) for c in "ibfsdtc" if c in out} | {"dt": str(out["dt"].dtype)} == {
        "i": "Int64", "b": "bool", "f": "float64", "s": "string", "c": "string", "dt": UTC_US,
    }  # fmt: skip
    types = lab.sql(f"SELECT typeof(i) AS i, typeof(dt) AS dt FROM {topic} LIMIT 1").iloc[0].tolist()
    assert types == ["BIGINT", "TIMESTAMP WITH TIME ZONE"]


@pytest.mark.parametrize(
    ("cells", "what"),
    [
        ([object(), object()], "object"),
        ([b"raw", b"bytes"], "bytes"),
        ([decimal.Decimal("1.5"), None], "Decimal"),
        ([{1, 2}, None], "set"),
        ([{"fine": 1}, {"nested": object()}], "dict"),
    ],
)
def test_send_many_refuses_what_json_cannot_hold(
    lab: streamlab.Lab, make_topic: Callable[..., str], cells: list[Any], what: str
) -> None:
    topic = make_topic()
    df = pd.DataFrame({"ok": [1, 2], "bad": pd.Series(cells, dtype=object)})
    with lab.producer() as p, pytest.raises(SerializationError, match=f"column 'bad' holds a value of type {what}"):
        p.send_many(topic, df)
    assert lab.offsets(topic)["high_watermark"].tolist() == [0]


@pytest.mark.parametrize(
    ("column", "hint"),
    [
        (pd.to_timedelta([1, 2], unit="s"), "total_seconds"),
        (pd.Series([1 + 2j, 3j]), "complex"),
        (pd.Series(pd.period_range("2024-01", periods=2, freq="M")), "period"),
    ],
)
def test_send_many_refuses_dtypes_replay_cannot_give_back(
    lab: streamlab.Lab, make_topic: Callable[..., str], column: Any, hint: str
) -> None:
    with lab.producer() as p, pytest.raises(SerializationError, match=f"column 'bad'.*{hint}"):
        p.send_many(make_topic(), pd.DataFrame({"bad": column}))


def test_object_columns_of_json_data_go_as_send_would_send_them(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(retention_ms=-1)
    df = pd.DataFrame(
        {
            "doc": [{"a": 1, "tags": ["x"]}, {"a": 2, "tags": []}],
            "when": [dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC), dt.datetime(2024, 5, 2, 12)],  # naive: as UTC
        }
    )
    with lab.producer() as p:
        p.send_many(topic, df)
    out = lab.replay(topic)
    # nested records are dicts (their lists arrive as arrays, as pyarrow gives them)
    assert [(d["a"], list(d["tags"])) for d in out["doc"]] == [(1, ["x"]), (2, [])]
    assert out["when"].tolist() == [pd.Timestamp("2024-05-01T12:00Z"), pd.Timestamp("2024-05-02T12:00Z")]
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        first = c.poll(timeout=5, max_records=1)[0].value
    assert first == {"doc": {"a": 1, "tags": ["x"]}, "when": "2024-05-01T12:00:00.000000Z"}


def test_fields_whose_types_disagree_become_text(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        for value in (b'{"n": 1, "k": "a"}', b'{"n": "two", "k": "b"}', b'{"n": [3], "k": "c"}'):
            p.send(topic, value=value)
    for _ in range(2):
        out = lab.replay(topic)
        assert out["n"].tolist() == ["1", "two", "[3]"]
        assert out["k"].tolist() == ["a", "b", "c"]
        lab.roll(topic)


def test_iso_times_from_any_client_become_utc_datetimes(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        p.send(topic, value=b'{"at": "2024-01-01T10:00:00+02:00", "day": "not a time", "local": "2024-01-01 10:00:00"}')
        p.send(topic, value={"at": "2024-01-01T09:00:00.5Z", "day": "2024-01-01T09:00:00Z", "local": "2024-01-02"})
        p.send(topic, value={"naive": "2024-01-01T09:00:00.25"})
    out = lab.replay(topic)
    assert str(out["at"].dtype) == UTC_US
    assert out["at"].tolist()[:2] == [pd.Timestamp("2024-01-01T08:00Z"), pd.Timestamp("2024-01-01T09:00:00.5Z")]
    assert out["day"].tolist()[:2] == ["not a time", "2024-01-01T09:00:00Z"]  # not all times: stays text
    # without a zone, times are taken as UTC (as send_many takes naive datetimes)
    assert str(out["local"].dtype) == UTC_US and str(out["naive"].dtype) == UTC_US
    assert out["local"].tolist()[:2] == [pd.Timestamp("2024-01-01T10:00Z"), pd.Timestamp("2024-01-02T00:00Z")]
    assert out["naive"].iloc[2] == pd.Timestamp("2024-01-01T09:00:00.25Z")


def test_arrow_backed_columns_of_a_concatenated_frame_go_typed(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    """pd.concat of frames with a string[pyarrow] column gives a chunked Arrow column."""
    topic = make_topic(partitions=1)
    ts = pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True)
    first = pd.DataFrame({"user": ["a", "b"], "plan": pd.array(["free", "pro"], dtype="string[pyarrow]"), "ts": ts[:2]})
    upgrade = pd.DataFrame({"user": ["a"], "plan": pd.array(["pro"], dtype="string[pyarrow]"), "ts": ts[2:]})
    with lab.producer() as p:
        p.send_many(topic, pd.concat([first, upgrade]), key="user", timestamp="ts", progress=False)
    for _ in range(2):  # from the active segment, then from Parquet
        out = lab.replay(topic)
        assert out["key"].tolist() == ["a", "b", "a"] and out["plan"].tolist() == ["free", "pro", "pro"]
        lab.roll(topic)
