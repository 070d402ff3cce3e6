"""Values other programs wrote, and DataFrame types, read back the same on every backend.

"Foreign" values are plain bytes with no streamlab format header: on ``kafka://`` they are
written by a bare confluent-kafka producer (as kcat or a Quix Streams app would), on the
embedded broker by ``send(bytes)``, which stores them the same way `streamlab serve` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import confluent_kafka as ck
import pandas as pd
import pytest

import streamlab

Sender = Callable[[str, list[bytes | None]], None]

FOREIGN = [
    b'{"id":1,"name":"a","amount":1.5}',
    b'  {"id": 2, "name": "b", "amount": 2.5}\n',  # padded, as some producers write it
    b"not json at all",
    b'{"id":3,"name":"c","amount":null}',
    b'"a JSON string"',
    b'{\n  "id": 4,\n  "name": "d",\n  "amount": 4.0\n}',  # pretty-printed
    None,  # a tombstone
]


@pytest.fixture
def foreign_send(lab: streamlab.Lab, backend: str, request: pytest.FixtureRequest) -> Sender:
    """Write values as bytes with no streamlab headers, in order, to partition 0."""
    if backend == "embedded":

        def send_embedded(topic: str, values: list[bytes | None]) -> None:
            with lab.producer() as p:
                for value in values:
                    p.send(topic, value=value, partition=0)

        return send_embedded
    if backend == "serve":
        bootstrap = request.getfixturevalue("serve_bootstrap")
    else:
        bootstrap = request.getfixturevalue("mock_cluster").bootstrap

    def send_plain(topic: str, values: list[bytes | None]) -> None:
        producer = ck.Producer({"bootstrap.servers": bootstrap})
        for value in values:
            producer.produce(topic, value=value, partition=0)
        assert producer.flush(10) == 0

    return send_plain


def _check_foreign_replay(out: pd.DataFrame) -> None:
    assert out["id"].dtype == "Int64"
    assert out["id"].tolist() == [1, 2, pd.NA, 3, pd.NA, 4, pd.NA]
    assert out["name"].fillna("-").tolist() == ["a", "b", "-", "c", "-", "d", "-"]
    assert out["amount"].tolist()[:2] == [1.5, 2.5] and out["amount"].iloc[5] == 4.0
    # what is not an object keeps its raw value and says why; null where fields hold it
    assert out["value"].tolist() == [None, None, b"not json at all", None, b'"a JSON string"', None, None]
    assert out["value_error"].fillna("-").tolist() == ["-", "-", "not JSON", "-", "not a JSON object", "-", "-"]


def test_json_from_another_client_becomes_field_columns(
    lab: streamlab.Lab, make_topic: Callable[..., str], foreign_send: Sender, backend: str
) -> None:
    topic = make_topic()
    foreign_send(topic, FOREIGN)
    _check_foreign_replay(lab.replay(topic))
    raw = lab.replay(topic, raw=True)
    assert raw["value"].tolist() == FOREIGN
    assert raw["id"].tolist() == [1, 2, pd.NA, 3, pd.NA, 4, pd.NA]
    rows = lab.sql(f'SELECT id, name, value_error FROM "{topic}" ORDER BY "offset"')
    assert rows["id"].fillna(0).tolist() == [1, 2, 0, 3, 0, 4, 0]
    assert rows["value_error"].fillna("-").tolist() == ["-", "-", "not JSON", "-", "not a JSON object", "-", "-"]
    total = lab.sql(f'SELECT sum(amount) AS s, count(name) AS n FROM "{topic}"')
    assert total["s"].iloc[0] == 8.0 and total["n"].iloc[0] == 4
    if backend == "embedded":  # the seal-time expansion gives the same replay
        lab.roll(topic)
        _check_foreign_replay(lab.replay(topic))


def test_poll_gives_foreign_json_objects_as_dicts(
    lab: streamlab.Lab, make_topic: Callable[..., str], foreign_send: Sender
) -> None:
    topic = make_topic()
    foreign_send(topic, FOREIGN)
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        records = c.poll(timeout=10, max_records=100)
    assert [r.value for r in records] == [
        {"id": 1, "name": "a", "amount": 1.5},
        {"id": 2, "name": "b", "amount": 2.5},
        b"not json at all",
        {"id": 3, "name": "c", "amount": None},
        b'"a JSON string"',
        {"id": 4, "name": "d", "amount": 4.0},
        None,
    ]


def test_foreign_json_replays_like_streamlabs_own_dicts(
    lab: streamlab.Lab, make_topic: Callable[..., str], foreign_send: Sender
) -> None:
    rows = [{"user": "u1", "n": 3, "price": 9.5, "ok": True, "tags": ["a"]}, {"user": "u2", "n": 4, "price": 1.0,
            "ok": False, "tags": []}]  # fmt: skip
    own, foreign = make_topic(), make_topic()
    with lab.producer() as p:
        for row in rows:
            p.send(own, value=row, partition=0)
    import json

    foreign_send(foreign, [json.dumps(row).encode() for row in rows])
    fields = ["user", "n", "price", "ok", "tags"]
    mine, theirs = lab.replay(own), lab.replay(foreign)
    assert list(mine.columns) == list(theirs.columns)
    pd.testing.assert_frame_equal(mine[fields], theirs[fields])
    assert "value" not in theirs.columns and "value_error" not in theirs.columns


def test_one_plain_string_does_not_hide_the_fields_of_the_others(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    with lab.producer() as p:
        p.send(topic, value={"a": 1}, partition=0)
        p.send(topic, value="hello", partition=0)
        p.send(topic, value={"a": 2, "b": "x"}, partition=1)
    out = lab.replay(topic)
    assert out["a"].tolist() == [1, pd.NA, 2]
    assert out["b"].fillna("-").tolist() == ["-", "-", "x"]
    assert out["value"].fillna("-").tolist() == ["-", "hello", "-"]
    assert out["value_error"].fillna("-").tolist() == ["-", "not JSON", "-"]


FRAME = pd.DataFrame(
    {
        "ts": [1_733_400_000_000, 1_733_400_001_000],
        "i": pd.array([1, None], dtype="Int64"),
        "b": [True, False],
        "f": [1.5, None],
        "s": ["x", None],
        "dt": pd.to_datetime(["2024-01-01T00:00:00Z", "2024-01-02T00:00:00.123456Z"], format="ISO8601"),
        "naive": pd.to_datetime(["2024-01-01T06:00", "2024-01-01T07:00"]),
        "c": pd.Categorical(["u", "v"]),
        "third": [1 / 3, 2 / 3],
    }
)


def test_send_many_types_survive_replay(lab: streamlab.Lab, make_topic: Callable[..., str], backend: str) -> None:
    topic = make_topic(retention_ms=-1)
    with lab.producer() as p:
        p.send_many(topic, FRAME, timestamp="ts")
    checks = [lab.replay(topic)]
    if backend == "embedded":
        lab.roll(topic)
        checks.append(lab.replay(topic))
    for out in checks:
        assert out["i"].dtype == "Int64" and out["i"].tolist() == [1, pd.NA]
        assert out["b"].dtype == bool and out["b"].tolist() == [True, False]
        assert out["f"].dtype == "float64" and out["f"].iloc[0] == 1.5 and pd.isna(out["f"].iloc[1])
        assert out["s"].tolist() == ["x", pd.NA]
        assert str(out["dt"].dtype) == "datetime64[us, UTC]" and out["dt"].tolist() == FRAME["dt"].tolist()
        # naive datetimes are taken as UTC
        assert out["naive"].tolist() == FRAME["naive"].dt.tz_localize("UTC").tolist()
        assert out["c"].tolist() == ["u", "v"]
        assert out["third"].tolist() == [1 / 3, 2 / 3]  # every digit of a float
        assert out["timestamp"].tolist() == pd.to_datetime(FRAME["ts"], unit="ms", utc=True).tolist()


def test_send_many_refuses_python_objects_naming_the_column(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    frame = pd.DataFrame({"fine": [1, 2], "thing": [object(), object()]})
    with lab.producer() as p, pytest.raises(streamlab.errors.SerializationError, match="column 'thing'"):
        p.send_many(topic, frame)
    assert lab.offsets(topic)["high_watermark"].tolist() == [0]


def test_a_frame_with_no_value_columns_writes_null_values(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(retention_ms=-1)
    with lab.producer() as p:
        p.send_many(topic, FRAME[["ts", "s"]], key="s", timestamp="ts")
    out = lab.replay(topic)
    assert out["value"].isna().all() and len(out) == 2 and out["key"].tolist() == ["x", pd.NA]
    assert lab.replay(topic, raw=True)["value"].isna().all()
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        assert [r.value for r in c.poll(timeout=10, max_records=10)] == [None, None]


def test_integer_timestamps_are_epoch_milliseconds_and_outlive_retention(
    lab: streamlab.Lab, make_topic: Callable[..., str], backend: str
) -> None:
    topic = make_topic()  # the default 7-day retention
    now = int(time.time() * 1000)
    with lab.producer() as p:
        p.send(topic, value={"n": 0}, timestamp=now - 1000).result(10)
        p.send_many(topic, pd.DataFrame({"ts": [now - 500, now], "n": [1, 2]}), timestamp="ts")
    if backend == "embedded":  # retention runs at seal: recent records stay
        lab.roll(topic)
        lab.apply_retention()
    out = lab.replay(topic)
    assert out["n"].tolist() == [0, 1, 2]
    assert out["timestamp"].tolist() == pd.to_datetime([now - 1000, now - 500, now], unit="ms", utc=True).tolist()


def test_value_format_chooses_how_values_are_read(
    lab: streamlab.Lab, make_topic: Callable[..., str], foreign_send: Sender
) -> None:
    topic = make_topic()
    foreign_send(topic, FOREIGN)
    as_bytes = lab.replay(topic, value_format="bytes")
    assert list(as_bytes.columns) == ["partition", "offset", "timestamp", "key", "value"]
    assert as_bytes["value"].tolist() == FOREIGN
    as_text = lab.replay(topic, value_format="string")
    assert as_text["value"].fillna("-").tolist() == [v.decode() if v else "-" for v in FOREIGN]
    assert "id" not in as_text.columns and "value_error" not in as_text.columns
    as_json = lab.replay(topic, value_format="json")
    assert as_json["id"].tolist() == [1, 2, pd.NA, 3, pd.NA, 4, pd.NA]
    assert as_json["value"].tolist() == [None, None, b"not json at all", None, "a JSON string", None, None]
    assert as_json["value_error"].fillna("-").tolist() == ["-", "-", "not JSON", "-", "-", "-", "-"]
    with pytest.raises(streamlab.errors.ConfigError, match="value_format"):
        lab.replay(topic, value_format="xml")


def test_key_format_chooses_how_keys_are_read(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as p:
        for key in (b'{"id": 7}', 5, "user-1", None):
            p.send(topic, value={"n": 1}, key=key, partition=0)
    assert lab.replay(topic, key_format="bytes")["key"].tolist() == [b'{"id": 7}', b"5", b"user-1", None]
    assert lab.replay(topic, key_format="string")["key"].tolist() == ['{"id": 7}', "5", "user-1", None]
    assert lab.replay(topic, key_format="json")["key"].tolist() == [{"id": 7}, 5, "user-1", None]
    assert lab.replay(topic)["key"].tolist() == [b'{"id": 7}', 5, "user-1", None]
