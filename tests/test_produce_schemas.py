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
        with pytest.raises(ConfigError, match="not for Protobuf"):
            producer.send(topic, {"user": "a"}, value_format="protobuf", value_schema={"type": "string"})
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


ORDER = """
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";

message Order {
  int64 id = 1;
  string user = 2;
  google.protobuf.Timestamp at = 3;
  repeated string tags = 4;
  Address ship_to = 5;
  message Address { string city = 1; }
}
"""


def _message_class(text: str, name: str) -> Any:
    """The message class an application generates from ``text`` with protoc."""
    from google.protobuf import message_factory

    from streamlab.model.schemas.proto import descriptor_pool
    from streamlab.model.schemas.types import Schema

    pool, _ = descriptor_pool(Schema(text, "PROTOBUF"), resolve=lambda ref: pytest.fail(str(ref)))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def test_send_protobuf_from_proto_text_is_framed_as_confluent_does(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    at = pd.Timestamp("2024-01-01 10:00:00.250", tz="UTC").to_pydatetime()
    with lab.producer() as producer:
        producer.send(topic, {"id": 2**62, "user": "ada", "at": at, "tags": ["a", "b"], "ship_to": {"city": "Oslo"}},
                      value_format="protobuf", value_schema=ORDER)  # fmt: skip
        producer.send(topic, {"id": -1}, value_format="protobuf").result(10)  # the subject's latest version
    latest = lab.schemas.latest(f"{topic}-value")
    assert latest.schema.schema_type == "PROTOBUF" and lab.schemas.versions(f"{topic}-value") == [1]
    raw = lab.replay(topic, raw=True)["value"].tolist()
    # magic byte, schema id, message indexes [0] as the single byte 0, then the message
    assert raw[0][0] == 0 and int.from_bytes(raw[0][1:5], "big") == latest.id and raw[0][5] == 0
    order = _message_class(ORDER, "shop.Order").FromString(bytes(raw[0][6:]))
    assert (order.id, order.user, list(order.tags), order.ship_to.city) == (2**62, "ada", ["a", "b"], "Oslo")
    assert order.at.ToDatetime(tzinfo=at.tzinfo) == at
    back = lab.replay(topic)
    assert str(back["id"].dtype) == "Int64" and back["id"].tolist() == [2**62, -1]
    assert back["at"][0] == pd.Timestamp(at) and pd.isna(back["at"][1])
    assert back["ship_to.city"].tolist()[0] == "Oslo"


def test_send_many_protobuf_derives_a_proto3_message_from_dtypes(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic, df = make_topic(), frame()
    with lab.producer() as producer:
        producer.send_many(topic, df, key="who", value_format="protobuf", key_format="protobuf")
        producer.send_many(topic, df.iloc[:1], key="who", value_format="protobuf", key_format="protobuf")
    assert lab.schemas.versions(f"{topic}-value") == [1] and lab.schemas.versions(f"{topic}-key") == [1]
    text = lab.schemas.latest(f"{topic}-value").schema.schema
    name = f"{topic.replace('-', '_')}_value"
    for line in ("optional string user = 1;", "optional int64 n = 2;", "double score = 3;", "bool ok = 4;",
                 "optional string tier = 5;", "int64 clicks = 6;", "google.protobuf.Timestamp at = 7;",
                 f"message {name} {{"):  # fmt: skip
        assert line in text
    # what an application with the generated class reads
    raw = lab.replay(topic, raw=True)
    first = _message_class(text, f"streamlab.{name}").FromString(bytes(raw["value"][0][6:]))
    assert (first.user, first.n, first.clicks) == ("ada", 1, 10) and first.HasField("n")
    back = lab.replay(topic).iloc[:3]
    assert back["user"].tolist()[:2] == ["ada", "bob"] and pd.isna(back["user"][2])
    assert back["n"].dtype == "Int64" and back["n"].isna().tolist() == [False, True, False]  # NA: not set
    assert back["score"].tolist()[:2] == [1.5, 2.25] and np.isnan(back["score"][2])
    assert back["ok"].tolist() == [True, False, True] and back["clicks"].tolist() == [10, 20, 2**40]
    assert back["tier"].tolist() == ["gold", "free", "gold"]
    assert back["at"].tolist() == df["at"].tolist()
    keys = [lab.schemas.decode(k) for k in raw["key"][:3]]
    assert keys == [{"who": "k1"}, {"who": "k2"}, {"who": "k1"}]  # a key message of one field


def test_protobuf_evolution_is_checked_and_bad_values_name_the_field(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    with lab.producer() as producer:
        producer.send_many(topic, pd.DataFrame({"user": ["a"], "n": [1]}), value_format="protobuf")
        # field 2 changes from int64 to string: records written before no longer read (BACKWARD)
        with pytest.raises(IncompatibleSchemaError, match="nothing was sent"):
            producer.send_many(topic, pd.DataFrame({"user": ["b"], "n": ["two"]}), value_format="protobuf")
        with pytest.raises(SerializationError, match="n field"):
            producer.send(topic, {"user": "c", "n": "seven"}, value_format="protobuf")
        with pytest.raises(SerializationError, match=r"row 0: .*user field"):
            producer.send_many(topic, pd.DataFrame({"user": [5], "n": [1]}), value_format="protobuf",
                               value_schema=lab.schemas.latest(f"{topic}-value").schema)  # fmt: skip
        # a new field is a compatible evolution: version 2
        producer.send_many(topic, pd.DataFrame({"user": ["d"], "n": [4], "m": [5]}), value_format="protobuf")
    assert lab.schemas.versions(f"{topic}-value") == [1, 2]
    back = lab.replay(topic)
    assert back["user"].tolist() == ["a", "d"] and back["n"].tolist() == [1, 4]
