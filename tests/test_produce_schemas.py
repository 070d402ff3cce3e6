"""Producing Avro and JSON Schema in Confluent's wire format from an embedded lab:
``send(value_format=..., value_schema=...)``, ``send_many(df, value_format=...)`` with a
schema derived from the dtypes, registered under the topic's subject, decoded by replay."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import fastavro
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from test_types_roundtrip import frames

import streamlab
from streamlab.errors import (
    ConfigError,
    IncompatibleSchemaError,
    SerializationError,
    UnsupportedOperationError,
)

_topics = itertools.count()
CLICK = {"type": "record", "name": "Click", "namespace": "shop",
         "fields": [{"name": "user", "type": "string"}, {"name": "n", "type": "long"},
                    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}  # fmt: skip


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "user": ["ada", "bob", None],
        "n": pd.array([1, None, 3], dtype="Int64"),
        "score": [1.5, 2.25, np.nan],
        "ok": [True, False, True],
        "tier": pd.Categorical(["gold", "free", "gold"]),
        "clicks": np.array([10, 20, 2**40]),
        "at": pd.to_datetime(["2024-01-01 10:00:00.123", "2024-01-02 00:00:00.000", "2024-01-03 00:00:00.000"],
                             utc=True),
        "who": ["k1", "k2", "k1"],
    })  # fmt: skip


def test_send_avro_is_confluent_framed_and_replays_typed(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as producer:
        producer.send(topic, {"user": "ada", "n": 7, "ts": 1_700_000_000_000}, value_format="avro", value_schema=CLICK)
        # no schema: the subject's latest version
        producer.send(topic, {"user": "bob", "n": 8, "ts": 1_700_000_000_001}, value_format="avro").result(10)
        producer.send(topic, None, key="gone", value_format="avro").result(10)  # a tombstone stays null
    latest = lab.schemas.latest(f"{topic}-value")
    assert lab.schemas.subjects() == [f"{topic}-value"] and latest.version == 1
    raw = lab.replay(topic, raw=True)["value"].tolist()
    assert raw[0][0] == 0 and int.from_bytes(raw[0][1:5], "big") == latest.id and raw[2] is None
    assert fastavro.schemaless_reader(io.BytesIO(raw[1][5:]), fastavro.parse_schema(CLICK), None)["user"] == "bob"
    replayed = lab.replay(topic)
    assert replayed["user"].tolist()[:2] == ["ada", "bob"]
    assert replayed["n"].dtype == "Int64" and replayed["n"].tolist()[:2] == [7, 8]
    assert replayed["ts"].dt.tz is not None
    assert replayed["ts"][0] == pd.Timestamp(1_700_000_000_000, unit="ms", tz="UTC")


def test_send_many_avro_derives_the_schema_from_dtypes(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic, df = make_topic(2), frame()
    with lab.producer() as producer:
        stored = producer.send_many(topic, df, key="who", value_format="avro", key_format="avro")
        producer.send_many(topic, df.iloc[:1], key="who", value_format="avro", key_format="avro")  # same schema
    assert len(stored) == 3
    value = json.loads(lab.schemas.latest(f"{topic}-value").schema.schema)
    assert lab.schemas.versions(f"{topic}-value") == [1]
    assert (value["name"], value["namespace"]) == (f"{topic}_value", "streamlab")
    types = {f["name"]: f["type"] for f in value["fields"]}
    assert types == {
        "user": ["null", "string"], "n": ["null", "long"], "score": "double", "ok": "boolean",
        "tier": ["null", "string"], "clicks": "long",
        "at": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
    }  # fmt: skip
    assert json.loads(lab.schemas.latest(f"{topic}-key").schema.schema) == ["null", "string"]
    back = lab.replay(topic).sort_values("user", na_position="last").drop_duplicates("user").reset_index(drop=True)
    assert back["user"].tolist()[:2] == ["ada", "bob"]
    assert back["n"].dtype == "Int64" and back["n"].isna().tolist() == [False, True, False]
    assert back["clicks"].tolist() == [10, 20, 2**40] and back["ok"].tolist() == [True, False, True]
    assert back["tier"].tolist() == ["gold", "free", "gold"]
    assert back["at"].tolist() == df["at"].tolist()  # millisecond times survive
    # the key is framed too, under <topic>-key, and keyed rows land together
    keys = lab.replay(topic, raw=True)["key"].tolist()
    assert all(k[0] == 0 for k in keys) and len({bytes(k) for k in keys}) == 2
    assert lab.schemas.decode(keys[0]) in ("k1", "k2")
    assert sorted(lab.replay(topic)["key"].tolist()) == ["k1", "k1", "k1", "k2"]  # replay decodes keys


def test_send_many_jsonschema_derived_and_validated(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic, df = make_topic(), frame().drop(columns="who")
    with lab.producer() as producer:
        producer.send_many(topic, df, value_format="jsonschema")
    schema = lab.schemas.latest(f"{topic}-value").schema
    assert schema.schema_type == "JSON"
    document = json.loads(schema.schema)
    assert document["properties"]["n"] == {"type": ["integer", "null"]} and document["required"] == ["ok", "clicks"]
    back = lab.replay(topic)
    assert back["user"].tolist()[:2] == ["ada", "bob"] and back["n"].dtype == "Int64"
    assert back["at"][0] == "2024-01-01T10:00:00.123000Z"  # JSON has no time type: ISO text (format date-time)
    with lab.producer() as producer, pytest.raises(SerializationError, match="is not of type 'integer'"):
        producer.send(topic, {"user": "x", "n": "seven", "ok": True, "clicks": 1}, value_format="jsonschema")


def test_an_incompatible_schema_is_refused_before_anything_is_sent(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    with lab.producer() as producer:
        producer.send_many(topic, pd.DataFrame({"user": ["a"], "n": [1]}), value_format="avro")
        # a new required field without a default: old records cannot be read with it (BACKWARD)
        with pytest.raises(IncompatibleSchemaError):
            producer.send_many(topic, pd.DataFrame({"user": ["b"], "n": [2], "m": [3]}), value_format="avro")
        # an optional field is a compatible evolution: version 2
        producer.send_many(topic, pd.DataFrame({"user": ["c"], "n": [3], "m": pd.array([4], "Int64")}),
                           value_format="avro")  # fmt: skip
    assert lab.schemas.versions(f"{topic}-value") == [1, 2]
    back = lab.replay(topic)
    assert back["user"].tolist() == ["a", "c"] and back["m"].isna().tolist() == [True, False]


def test_clear_errors(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as producer:
        with pytest.raises(ConfigError, match="has no schema yet: pass value_schema="):
            producer.send(topic, {"user": "a"}, value_format="avro")
        with pytest.raises(UnsupportedOperationError, match="ProtobufSerializer"):
            producer.send(topic, {"user": "a"}, value_format="protobuf")
        with pytest.raises(ConfigError, match="value_format must be"):
            producer.send_many(topic, pd.DataFrame({"a": [1]}), value_format="xml")
        with pytest.raises(SerializationError, match="column 'span'"):
            producer.send_many(topic, pd.DataFrame({"span": pd.to_timedelta([1], unit="s")}), value_format="avro")
        with pytest.raises(SerializationError, match="not a valid Avro field name"):
            producer.send_many(topic, pd.DataFrame({"a b": [1]}), value_format="avro")
        with pytest.raises(SerializationError, match="row 0"):
            producer.send_many(topic, pd.DataFrame({"user": [1]}), value_format="avro", value_schema=CLICK)
    assert lab.offsets(topic)["high_watermark"].sum() == 0  # nothing was sent by a refused call


def _cells(column: pd.Series) -> list[Any]:
    """A column's cells to compare: missing as None, times as UTC milliseconds (Avro's
    timestamp-millis), numbers and text as they are."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        times = column.dt.tz_localize("UTC") if column.dt.tz is None else column
        return [None if pd.isna(t) else t.floor("ms").value // 1_000_000 for t in times]
    return [None if pd.isna(v) else v for v in column.astype(object)]


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[streamlab.Lab]:
    with streamlab.connect(tmp_path_factory.mktemp("avro")) as lab:
        yield lab


@settings(max_examples=15, deadline=None)
@given(frame=frames())
def test_send_many_avro_round_trip_keeps_values_and_kinds(
    shared_lab: streamlab.Lab, frame: tuple[pd.DataFrame, dict[str, str]]
) -> None:
    """A property over frames of mixed dtypes with NAs (``test_types_roundtrip``'s)."""
    df, _ = frame
    topic = f"avro{next(_topics)}"
    shared_lab.create_topic(topic, config={"retention.ms": -1})
    with shared_lab.producer() as producer:
        producer.send_many(topic, df, value_format="avro")
    back = shared_lab.replay(topic)
    assert len(back) == len(df)
    for name in df.columns:
        assert _cells(back[name]) == _cells(df[name]), name
        kind = df[name].dtype.kind if not isinstance(df[name].dtype, pd.CategoricalDtype) else "O"
        if kind in "iufbM":  # numbers, bools and times come back as numbers, bools and times
            assert back[name].dtype.kind == kind or str(back[name].dtype) in ("Int64", "boolean"), name


def test_sql_of_plain_topics_never_creates_a_registry(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.producer() as producer:
        producer.send_many(topic, pd.DataFrame({"user": ["ada"]}))
        producer.send(topic, b"\x00\x00\x00\x00\x01binary").result(10)  # starts like a framed value
    assert lab.sql(f'SELECT count(*) AS n FROM "{topic}"')["n"].tolist() == [2]
    assert "_schemas" not in lab.topics()["name"].tolist()
    with lab.consumer(topic, auto_offset_reset="earliest") as consumer:
        assert consumer.poll(timeout=1)[1].value == b"\x00\x00\x00\x00\x01binary"  # no schema 1: as it is
