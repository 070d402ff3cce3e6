"""Fresh data is fast: topics seal on time (``segment.ms``) as well as size, and
``send_many``'s typed columns reach the active segment's replay and the sealed Parquet
without being parsed back from JSON, reading back exactly as the parsed text does."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from test_types_roundtrip import frames

import streamlab
from streamlab.broker import query
from streamlab.broker.plain_replay import plain_replay
from streamlab.broker.segment_timer import seal_due
from streamlab.config import topic_config
from streamlab.errors import StreamlabError
from streamlab.model.fields import combine_typed_fields, expand_json_objects
from streamlab.model.frames import frame_rows
from streamlab.model.views import Bounds


def _sealed(lab: streamlab.Lab, topic: str) -> int:
    return sum(len(log.sealed_segments()) for log in lab.backend.broker.topic(topic).logs)


def _mixed_frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    start = pd.Timestamp("2024-05-01T12:00:00Z")
    return pd.DataFrame(
        {
            "user": [f"u{i % 7}" for i in range(n)],
            "count": rng.integers(-5, 1_000_000, n),
            "maybe": pd.array([None if i % 4 == 0 else i for i in range(n)], dtype="Int64"),
            "flag": [i % 3 == 0 for i in range(n)],
            "ratio": [np.nan if i % 5 == 0 else i / 7 for i in range(n)],
            "small": np.arange(n, dtype=np.int8),
            "single": np.arange(n, dtype=np.float32) / 10,  # float32: parsed from its text
            "nothing": [np.nan] * n,  # a field null in every row
            "at": [start + pd.Timedelta(seconds=i) for i in range(n)],
            "naive": pd.date_range("2024-01-01", periods=n, freq="h"),
            "colour": pd.Categorical(["red", "blue"] * (n // 2)),
            "day": ["2024-01-02"] * n,  # text the JSON reader may take for a date
            "meta": [{"i": i} for i in range(n)],  # cells embedded as JSON
        }
    )


# typed on the way to disk -------------------------------------------------------------------
def test_send_many_keeps_plain_typed_columns_and_leaves_the_rest_to_the_json_text() -> None:
    df = _mixed_frame().drop(columns=["single", "day", "meta"])
    fields = frame_rows(df, key=None, timestamp=None).fields
    assert fields is not None
    types = {f.name: f.type for f in fields.type}
    assert types["count"] == pa.int64() and types["small"] == pa.int64() and types["flag"] == pa.bool_()
    assert types["at"] == pa.timestamp("us", "UTC") and types["naive"] == pa.timestamp("us", "UTC")
    assert types["colour"] == pa.string() and types["user"] == pa.string()
    for column in ("single", "day", "meta"):  # what only the text tells: no typed fields
        assert frame_rows(_mixed_frame()[["user", column]], key=None, timestamp=None).fields is None


@pytest.mark.parametrize("columns", ["all", "typed"])
def test_replay_of_send_many_is_the_same_fresh_sealed_and_after_a_restart(tmp_path: Path, columns: str) -> None:
    """The active segment (typed fields in memory), the Parquet sealed from them, and the
    same data after a restart (the active file's JSON parsed) replay identically."""
    df = _mixed_frame()
    if columns == "typed":
        df = df.drop(columns=["single", "day", "meta"])
    with streamlab.connect(tmp_path / "lab") as lab:
        lab.create_topic("fresh", partitions=2)
        lab.create_topic("sealed", partitions=2)
        with lab.producer() as p:
            p.send_many("fresh", df, chunk_size=16)
            p.send_many("sealed", df, chunk_size=16)
        fresh = lab.replay("fresh")
        lab.roll("sealed")
        sealed = lab.replay("sealed")
        typed_sql = lab.sql('SELECT sum("count") AS s FROM fresh')
    pd.testing.assert_frame_equal(fresh.drop(columns="timestamp"), sealed.drop(columns="timestamp"))
    assert int(typed_sql["s"][0]) == int(df["count"].sum())
    with streamlab.connect(tmp_path / "lab") as lab:  # recovered from the active file's JSON
        recovered = lab.replay("fresh")
        lab.roll("fresh")
        resealed = lab.replay("fresh")
    pd.testing.assert_frame_equal(fresh, recovered)
    pd.testing.assert_frame_equal(fresh, resealed)
    assert str(fresh["maybe"].dtype) == "Int64" and fresh["maybe"].isna().sum() == df["maybe"].isna().sum()
    assert str(fresh["at"].dtype) == "datetime64[us, UTC]"


def test_a_sealed_send_many_segment_holds_typed_fields_and_the_records_json(lab: streamlab.Lab) -> None:
    lab.create_topic("t")
    df = pd.DataFrame({"n": [1, 2, 3], "name": ["a", "b", "c"]})
    with lab.producer() as p:
        p.send_many("t", df)
    lab.roll("t")
    (log,) = lab.backend.broker.topic("t").logs
    (segment,) = log.sealed_segments()
    table = pq.read_table(log.segment_path(segment))
    assert table.schema.field("value_fields").type == pa.struct([("n", pa.int64()), ("name", pa.string())])
    assert table.column("value").to_pylist() == [b'{"n":1,"name":"a"}', b'{"n":2,"name":"b"}', b'{"n":3,"name":"c"}']
    with lab.consumer("t", auto_offset_reset="earliest") as c:  # what a wire Fetch serves too
        assert [r.value for r in c.poll(timeout=5, max_records=10)] == df.to_dict("records")


def test_send_many_after_send_mixes_typed_and_parsed_values(lab: streamlab.Lab) -> None:
    lab.create_topic("t")
    with lab.producer() as p:
        p.send("t", value={"n": 0, "name": "first"}).result(10)
        p.send_many("t", pd.DataFrame({"n": [1, 2], "name": ["x", "y"]}))
    before = lab.replay("t")
    lab.roll("t")
    after = lab.replay("t")
    assert before["n"].tolist() == [0, 1, 2] and before["name"].tolist() == ["first", "x", "y"]
    pd.testing.assert_frame_equal(before, after)


# segment.ms ----------------------------------------------------------------------------------
def test_segment_ms_default_is_a_minute_and_bad_values_are_refused(lab: streamlab.Lab) -> None:
    assert topic_config()["segment.ms"] == 60_000
    lab.create_topic("t")
    assert lab.topics().set_index("name").loc["t", "config"]["segment.ms"] == 60_000
    for bad in (0, -1, "soon", True, 1.5):
        with pytest.raises(StreamlabError):
            lab.create_topic("bad", config={"segment.ms": bad})
        with pytest.raises(StreamlabError):
            lab.alter_topic_config("t", {"segment.ms": bad})
    assert lab.alter_topic_config("t", {"segment_ms": "5000"})["segment.ms"] == 5000


def test_an_active_segment_is_sealed_once_its_first_record_is_segment_ms_old(tmp_path: Path) -> None:
    clock = streamlab.ManualClock()
    with streamlab.connect(tmp_path / "lab", clock=clock) as lab:
        broker = lab.backend.broker
        lab.create_topic("t", partitions=2, config={"segment.ms": 10_000})
        lab.create_topic("idle")
        with lab.producer() as p:
            p.send_many("t", pd.DataFrame({"n": range(10)}), partition=0)
        clock.advance(6)
        with lab.producer() as p:  # a later append does not restart the segment's age
            p.send_many("t", pd.DataFrame({"n": range(10, 20)}), partition=0)
            p.send_many("t", pd.DataFrame({"n": range(5)}), partition=1)
        assert seal_due(broker) == 0
        clock.advance(3.999)
        assert seal_due(broker) == 0 and _sealed(lab, "t") == 0
        clock.advance(0.001)
        assert seal_due(broker) == 1  # partition 0; partition 1 is 4 s old
        assert [len(log.sealed_segments()) for log in broker.topic("t").logs] == [1, 0]
        clock.advance(6)
        assert seal_due(broker) == 1 and _sealed(lab, "t") == 2
        assert seal_due(broker) == 0 and _sealed(lab, "idle") == 0  # nothing to seal
        assert lab.replay("t", partitions=[0])["n"].tolist() == list(range(20))


def test_segment_ms_measures_the_append_not_old_record_timestamps(tmp_path: Path) -> None:
    clock = streamlab.ManualClock()
    with streamlab.connect(tmp_path / "lab", clock=clock) as lab:
        lab.create_topic("history", config={"segment.ms": 60_000, "retention.ms": -1})
        df = pd.DataFrame({"ts": [1_500_000_000_000, 1_500_000_001_000], "n": [1, 2]})
        with lab.producer() as p:
            p.send_many("history", df, timestamp="ts")
            p.send_many("history", df, timestamp="ts")
        assert seal_due(lab.backend.broker) == 0 and _sealed(lab, "history") == 0


def test_an_altered_segment_ms_applies_to_the_active_segment(tmp_path: Path) -> None:
    clock = streamlab.ManualClock()
    with streamlab.connect(tmp_path / "lab", clock=clock) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            p.send("t", value={"n": 1}).result(10)
        clock.advance(30)
        assert seal_due(lab.backend.broker) == 0
        lab.alter_topic_config("t", {"segment.ms": 20_000})
        assert seal_due(lab.backend.broker) == 1


def test_the_broker_timer_seals_without_being_asked(tmp_path: Path) -> None:
    """No call to seal_due: the broker's own timer thread sees the clock has moved."""
    clock = streamlab.ManualClock()
    with streamlab.connect(tmp_path / "lab", clock=clock) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            p.send_many("t", pd.DataFrame({"n": range(100)}))
        clock.advance(61)
        deadline = time.monotonic() + 15  # the timer looks about once a second
        while _sealed(lab, "t") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sealed(lab, "t") == 1
        assert lab.replay("t")["n"].tolist() == list(range(100))


# replay without SQL ----------------------------------------------------------------------------
def _both_ways(lab: streamlab.Lab, topic: str, bounds: Bounds, monkeypatch: pytest.MonkeyPatch) -> pa.Table | None:
    """The plain replay of ``bounds`` (None: not a plain topic), checked against SQL's."""
    broker = lab.backend.broker
    with query.Snapshots(broker) as snapshots:
        plain = plain_replay(broker, topic, bounds, snapshots)
    with monkeypatch.context() as m:
        m.setattr(query, "plain_replay", lambda *args: None)
        by_sql = query.replay(broker, topic, bounds)
    if plain is not None:
        assert plain.schema == by_sql.schema
        assert plain.equals(by_sql), (plain.slice(0, 3).to_pylist(), by_sql.slice(0, 3).to_pylist())
    return plain


def test_plain_replay_gives_exactly_what_sql_gives(lab: streamlab.Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    lab.create_topic("t", partitions=3)
    df = _mixed_frame(60).drop(columns=["single", "day", "meta", "nothing"])
    df["key"] = [f"k{i % 9}" for i in range(60)]
    df["offset"] = range(60)  # a field named like a record column: value.offset
    with lab.producer() as p:
        p.send_many("t", df.iloc[:30], key="key")
        lab.roll("t")
        p.send_many("t", df.iloc[30:], key="key")  # sealed segments and active batches
        p.send("t", value={"user": "u1", "count": 1, "maybe": 2, "flag": True, "ratio": 0.5, "small": 1,
                           "at": "2024-01-01T00:00:00.000000Z", "naive": "2024-01-01T00:00:00.000000Z",
                           "colour": "red", "offset": 1}, key="k1").result(10)  # fmt: skip
    middle = int(lab.replay("t", partitions=[0])["timestamp"].astype("int64").median() // 1000)
    for bounds in (Bounds(), Bounds(partitions=[2, 0]), Bounds(start_offset=3, end_offset=12),
                   Bounds(start_ms=middle), Bounds(end_ms=middle)):  # fmt: skip
        assert _both_ways(lab, "t", bounds, monkeypatch) is not None
    replayed = lab.replay("t")
    assert "value.offset" in replayed.columns and len(replayed) == 61


def test_plain_replay_leaves_other_topics_to_sql(lab: streamlab.Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    lab.create_topic("strings")
    lab.create_topic("nested")
    lab.create_topic("tombstone")
    lab.create_topic("txn")
    with lab.producer() as p:
        p.send("strings", value="plain text").result(10)
        p.send("nested", value={"a": {"b": 1}}).result(10)
        p.send("tombstone", value={"a": 1}, key="k").result(10)
        p.send("tombstone", value=None, key="k").result(10)
    with lab.producer(transactional_id="tx") as p:
        p.init_transactions()
        p.begin_transaction()
        p.send("txn", value={"a": 1})
        p.flush()
        for topic in ("strings", "nested", "tombstone", "txn"):  # "txn": a transaction still open
            assert _both_ways(lab, topic, Bounds(), monkeypatch) is None
        p.abort_transaction()


def test_plain_replay_starts_at_the_log_start(lab: streamlab.Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    lab.create_topic("t")
    with lab.producer() as p:
        p.send_many("t", pd.DataFrame({"n": range(20)}))
    lab.roll("t")
    lab.backend.broker.log("t", 0).delete_records(5)  # inside the sealed segment (DeleteRecords)
    plain = _both_ways(lab, "t", Bounds(), monkeypatch)
    assert plain is not None and plain.column("n").to_pylist() == list(range(5, 20))


def test_a_replay_out_of_log_order_is_sorted_by_partition_then_offset() -> None:
    table = pa.table({"partition": pa.array([1, 0, 1, 0], pa.int32()), "offset": [5, 9, 4, 2], "v": list("abcd")})
    ordered = query._in_log_order(table)
    assert ordered.column("v").to_pylist() == ["d", "b", "c", "a"]
    assert query._in_log_order(ordered) is ordered  # in order already: not copied


@settings(max_examples=40, deadline=None)
@given(frame=frames())
def test_typed_fields_equal_what_parsing_the_json_gives(frame: tuple[pd.DataFrame, dict[str, str]]) -> None:
    """Property: over mixed-dtype frames with NAs, the fields send_many keeps typed are the
    fields the seal would have parsed from the stored JSON (what a restart parses)."""
    df, _ = frame
    rows = frame_rows(df, key=None, timestamp=None)
    typed = combine_typed_fields([rows.fields])
    parsed = expand_json_objects(
        pa.table({"value": rows.values, "value_format": pa.array([rows.value_format] * len(df), pa.int8())})
    )
    if typed is not None:
        assert parsed is not None and typed.type == parsed.type, (typed.type, parsed.type)
        assert typed.equals(parsed), (typed.to_pylist(), parsed.to_pylist())
