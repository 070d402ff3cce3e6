"""The Schema Registry of an embedded lab (``lab.schemas``): ids, versions, compatibility
levels for Avro and JSON Schema, durability in the ``_schemas`` topic, Confluent's wire format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import streamlab
from streamlab.errors import (
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    ReferenceExistsError,
    SchemaDecodeError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    VersionNotFoundError,
)
from streamlab.model.schemas.wire import decode_confluent, frame, schema_id


def record(*fields: dict[str, Any], name: str = "Click") -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": [{"name": "user", "type": "string"}, *fields]}


WITH_DEFAULT = {"name": "page", "type": "string", "default": "/"}
WITHOUT_DEFAULT = {"name": "page", "type": "string"}


def test_register_gives_global_ids_versions_and_the_same_id_again(lab: streamlab.Lab) -> None:
    schemas = lab.schemas
    first = schemas.register("clicks-value", record())
    assert schemas.register("clicks-value", json.dumps(record(), indent=2)) == first  # same schema, other spacing
    second = schemas.register("clicks-value", record(WITH_DEFAULT))
    assert second == first + 1
    assert schemas.register("other-value", record()) == first  # one id per schema, across subjects
    assert schemas.versions("clicks-value") == [1, 2]
    latest = schemas.latest("clicks-value")
    assert (latest.id, latest.version, latest.subject) == (second, 2, "clicks-value")
    assert json.loads(schemas.get(first).schema) == record()
    assert schemas.get(first).schema_type == "AVRO"
    assert schemas.subjects() == ["clicks-value", "other-value"]
    assert schemas.version("clicks-value", 1).id == first


@pytest.mark.parametrize(
    ("level", "change", "accepted"),
    [
        ("BACKWARD", "add with default", True),
        ("BACKWARD", "add without default", False),
        ("BACKWARD", "remove without default", True),
        ("FORWARD", "add without default", True),
        ("FORWARD", "remove without default", False),
        ("FORWARD", "add with default", True),
        ("FULL", "add with default", True),
        ("FULL", "add without default", False),
        ("FULL", "remove without default", False),
        ("NONE", "add without default", True),
        ("NONE", "int to string", True),
        ("BACKWARD", "int to string", False),
        ("BACKWARD", "int to long", True),  # Avro's promotion: a long reader reads int data
        ("FORWARD", "int to long", False),
    ],
)
def test_avro_compatibility_levels(lab: streamlab.Lab, level: str, change: str, accepted: bool) -> None:
    subject = f"t-{level}-{change.replace(' ', '-')}"
    count: dict[str, Any] = {"name": "count", "type": "int"}
    before, after = {
        "add with default": (record(), record(WITH_DEFAULT)),
        "add without default": (record(), record(WITHOUT_DEFAULT)),
        "remove without default": (record(WITHOUT_DEFAULT), record()),
        "int to string": (record(count), record({"name": "count", "type": "string"})),
        "int to long": (record(count), record({"name": "count", "type": "long"})),
    }[change]
    lab.schemas.set_compatibility(level, subject=subject)
    lab.schemas.register(subject, before)
    check = lab.schemas.check_compatibility(subject, after)
    assert bool(check) is accepted and check.level == level
    if accepted:
        assert lab.schemas.register(subject, after) > 0
        assert lab.schemas.versions(subject) == [1, 2]
    else:
        assert check.messages  # says why
        with pytest.raises(IncompatibleSchemaError, match="incompatible"):
            lab.schemas.register(subject, after)
        assert lab.schemas.versions(subject) == [1]


def test_transitive_levels_check_every_earlier_version(lab: streamlab.Lab) -> None:
    # v1 has no page; v2 adds it with a default; v3 drops the default. Against v2 alone
    # (BACKWARD) v3 is fine; against v1 too (BACKWARD_TRANSITIVE) it is not.
    v1, v2, v3 = record(), record(WITH_DEFAULT), record(WITHOUT_DEFAULT)
    for subject, level in (("plain", "BACKWARD"), ("transitive", "BACKWARD_TRANSITIVE")):
        lab.schemas.set_compatibility(level, subject)
        lab.schemas.register(subject, v1)
        lab.schemas.register(subject, v2)
    assert lab.schemas.register("plain", v3)
    assert lab.schemas.check_compatibility("plain", v3)  # already the latest
    assert not lab.schemas.check_compatibility("transitive", v3)
    assert lab.schemas.check_compatibility("transitive", v3, version=2)  # against that version alone
    with pytest.raises(IncompatibleSchemaError):
        lab.schemas.register("transitive", v3)
    # FORWARD_TRANSITIVE: every earlier reader must read the new data
    lab.schemas.set_compatibility("FORWARD_TRANSITIVE", "fwd")
    lab.schemas.register("fwd", record(WITHOUT_DEFAULT))
    lab.schemas.register("fwd", record(WITH_DEFAULT, {"name": "n", "type": "int", "default": 0}))
    v3 = record({"name": "n", "type": "int", "default": 0})  # v2 reads it (page has a default), v1 does not
    assert lab.schemas.check_compatibility("fwd", v3, version=2)
    assert not lab.schemas.check_compatibility("fwd", v3)
    # FULL_TRANSITIVE: both ways against all
    lab.schemas.set_compatibility("FULL_TRANSITIVE", "full")
    lab.schemas.register("full", record())
    lab.schemas.register("full", record(WITH_DEFAULT))
    assert lab.schemas.check_compatibility("full", record({"name": "x", "type": "int", "default": 1}))
    assert not lab.schemas.check_compatibility("full", record({"name": "x", "type": "int"}))


def test_global_and_subject_levels(lab: streamlab.Lab) -> None:
    assert lab.schemas.compatibility() == "BACKWARD"  # Confluent's default
    lab.schemas.register("s", record())
    assert lab.schemas.set_compatibility("none") == "NONE"
    assert lab.schemas.compatibility("s") == "NONE"  # no level of its own: the global one
    assert lab.schemas.register("s", record({"name": "n", "type": "int"}))
    lab.schemas.set_compatibility("FULL", "s")
    assert (lab.schemas.compatibility("s"), lab.schemas.compatibility()) == ("FULL", "NONE")
    with pytest.raises(InvalidCompatibilityLevelError):
        lab.schemas.set_compatibility("SIDEWAYS")


JSON_V1 = {"type": "object", "properties": {"user": {"type": "string"}}, "required": ["user"]}


@pytest.mark.parametrize(
    ("level", "after", "accepted"),
    [
        # a closed model: an optional property may be added, a required one may not
        (
            "BACKWARD",
            {
                **JSON_V1,
                "additionalProperties": False,
                "properties": {**JSON_V1["properties"], "page": {"type": "string"}},
            },
            True,
        ),
        (
            "BACKWARD",
            {
                **JSON_V1,
                "additionalProperties": False,
                "required": ["user", "page"],
                "properties": {**JSON_V1["properties"], "page": {"type": "string"}},
            },
            False,
        ),
        ("BACKWARD", {**JSON_V1, "properties": {"user": {"type": ["string", "null"]}}}, True),  # widened type
        ("BACKWARD", {**JSON_V1, "properties": {"user": {"type": "integer"}}}, False),  # changed type
        ("FORWARD", {**JSON_V1, "properties": {"user": {"type": ["string", "null"]}}}, False),
        ("FULL", {**JSON_V1, "properties": {"user": {"type": "string", "maxLength": 3}}}, False),  # narrowed
        ("NONE", {"type": "integer"}, True),
    ],
)
def test_json_schema_compatibility(lab: streamlab.Lab, level: str, after: dict[str, Any], accepted: bool) -> None:
    before = {**JSON_V1, "additionalProperties": False} if after.get("additionalProperties") is False else JSON_V1
    subject = f"json-{level}-{len(lab.schemas.subjects())}"
    lab.schemas.set_compatibility(level, subject)
    lab.schemas.register(subject, before, schema_type="JSON")
    assert bool(lab.schemas.check_compatibility(subject, after, schema_type="JSON")) is accepted


def test_json_property_added_to_an_open_model_and_removed_from_a_closed_one(lab: streamlab.Lab) -> None:
    open_v2 = {**JSON_V1, "properties": {**JSON_V1["properties"], "page": {"type": "string"}}}
    lab.schemas.register("open", JSON_V1, schema_type="JSON")
    check = lab.schemas.check_compatibility("open", open_v2, schema_type="JSON")
    assert not check and "open content model" in check.messages[0]
    closed = {**JSON_V1, "additionalProperties": False, "properties": {**JSON_V1["properties"], "x": {}}}
    lab.schemas.set_compatibility("BACKWARD", "closed")  # the new reader meets old data with x
    lab.schemas.register("closed", closed, schema_type="JSON")
    check = lab.schemas.check_compatibility("closed", {**JSON_V1, "additionalProperties": False}, "JSON")
    assert not check and "closed content model" in " ".join(check.messages)


def test_errors_for_unknown_names_and_invalid_schemas(lab: streamlab.Lab) -> None:
    with pytest.raises(SubjectNotFoundError, match="not found"):
        lab.schemas.latest("nope")
    lab.schemas.register("s", record())
    with pytest.raises(VersionNotFoundError):
        lab.schemas.version("s", 9)
    with pytest.raises(SchemaNotFoundError):
        lab.schemas.get(999)
    with pytest.raises(InvalidSchemaError, match="AVRO"):
        lab.schemas.register("s", {"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]})
    with pytest.raises(InvalidSchemaError, match="not JSON"):
        lab.schemas.register("s", "{not json")
    with pytest.raises(InvalidSchemaError, match="JSON schema"):
        lab.schemas.register("j", {"type": 12}, schema_type="JSON")
    with pytest.raises(InvalidSchemaError, match="schema type"):
        lab.schemas.register("j", {"type": "object"}, schema_type="XML")
    assert SubjectNotFoundError("x").error_code == 40401 and IncompatibleSchemaError("x").error_code == 409


def test_schemas_survive_reopening_with_the_same_ids(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path / "data") as lab:
        ids = [lab.schemas.register("a-value", record()), lab.schemas.register("a-value", record(WITH_DEFAULT))]
        json_id = lab.schemas.register("b-value", JSON_V1, schema_type="JSON")
        lab.schemas.set_compatibility("FULL", "a-value")
        lab.schemas.delete_subject("b-value")
    with streamlab.connect(tmp_path / "data") as lab:
        assert lab.schemas.versions("a-value") == [1, 2]
        assert [lab.schemas.version("a-value", v).id for v in (1, 2)] == ids
        assert lab.schemas.compatibility("a-value") == "FULL"
        assert lab.schemas.subjects() == ["a-value"]  # b-value was soft-deleted...
        assert lab.schemas.get(json_id).schema_type == "JSON"  # ...its id still decodes
        assert lab.schemas.register("a-value", record()) == ids[0]  # the same schema: the same id
        assert lab.schemas.register("c-value", record({"name": "z", "type": "int"})) == json_id + 1
        topics = lab.topics().set_index("name")
        assert topics.loc["_schemas", "config"]["cleanup.policy"] == "compact"


def test_soft_and_permanent_delete(lab: streamlab.Lab) -> None:
    lab.schemas.register("s", record())
    with pytest.raises(SubjectNotSoftDeletedError):
        lab.schemas.delete_subject("s", permanent=True)
    assert lab.schemas.delete_subject("s") == [1]
    with pytest.raises(SubjectNotFoundError):
        lab.schemas.latest("s")
    assert lab.schemas.delete_subject("s", permanent=True) == [1]
    assert lab.schemas.port.subjects(deleted=True) == []


def test_avro_references(lab: streamlab.Lab) -> None:
    address = {"type": "record", "name": "Address", "namespace": "shop", "fields": [{"name": "city", "type": "string"}]}
    lab.schemas.register("address", address)
    order = {"type": "record", "name": "Order", "namespace": "shop",
             "fields": [{"name": "id", "type": "long"}, {"name": "ship_to", "type": "shop.Address"}]}  # fmt: skip
    refs = [{"name": "shop.Address", "subject": "address", "version": 1}]
    with pytest.raises(InvalidSchemaError):
        lab.schemas.register("orders-value", order)  # without the reference, shop.Address is unknown
    order_id = lab.schemas.register("orders-value", order, references=refs)
    assert lab.schemas.get(order_id).references[0].subject == "address"
    payload = lab.schemas.encode({"id": 7, "ship_to": {"city": "Oslo"}}, order_id)
    assert lab.schemas.decode(payload) == {"id": 7, "ship_to": {"city": "Oslo"}}
    with pytest.raises(ReferenceExistsError):
        lab.schemas.delete_subject("address")


def test_confluent_wire_format(lab: streamlab.Lab) -> None:
    avro_id = lab.schemas.register("w-value", record({"name": "n", "type": ["null", "long"], "default": None}))
    payload = lab.schemas.encode({"user": "ada", "n": 3}, avro_id)
    assert payload[0] == 0 and schema_id(payload) == avro_id
    assert lab.schemas.decode(payload) == {"user": "ada", "n": 3}
    assert decode_confluent(payload, lab.schemas.get) == {"user": "ada", "n": 3}
    json_id = lab.schemas.register("j-value", JSON_V1, schema_type="JSON")
    assert lab.schemas.decode(lab.schemas.encode({"user": "bob"}, json_id)) == {"user": "bob"}
    with pytest.raises(SchemaDecodeError, match="encode"):
        lab.schemas.encode({"user": 5}, json_id)  # validated against the JSON Schema
    with pytest.raises(SchemaDecodeError, match="encode"):
        lab.schemas.encode({"nobody": 1}, avro_id)
    with pytest.raises(SchemaDecodeError, match="does not decode"):
        lab.schemas.decode(frame(avro_id, b"\x02"))  # truncated
    with pytest.raises(SchemaDecodeError, match="wire format"):
        lab.schemas.decode(b'{"user": "x"}')
    with pytest.raises(SchemaNotFoundError):
        lab.schemas.decode(frame(4242, b""))


def test_kafka_lab_without_a_registry_says_how_to_give_one() -> None:
    from streamlab.errors import ConfigError

    with pytest.raises(ConfigError, match="kafka://"):
        streamlab.connect("some-dir", schema_registry="http://127.0.0.1:1")


def test_replay_decodes_confluent_framed_values_through_the_registry(lab: streamlab.Lab) -> None:
    schema = {"type": "record", "name": "Order", "fields": [
        {"name": "id", "type": "long"}, {"name": "price", "type": "double"}, {"name": "paid", "type": "boolean"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ship_to", "type": {"type": "record", "name": "Address",
                                     "fields": [{"name": "city", "type": "string"}]}},
    ]}  # fmt: skip
    sid = lab.schemas.register("orders-value", schema)
    producer = lab.producer()
    producer.send("orders", value=lab.schemas.encode(
        {"id": 1, "price": 2.0, "paid": True, "at": 1_700_000_000_000, "ship_to": {"city": "Oslo"}}, sid))  # fmt: skip
    producer.send("orders", value=lab.schemas.encode(
        {"id": 2, "price": 2.5, "paid": False, "at": 1_700_000_001_000, "ship_to": {"city": "Rome"}}, sid))  # fmt: skip
    producer.send("orders", value=frame(4242, b"\x02"))  # an id the registry does not know
    producer.flush(10)
    producer.close()
    frame_ = lab.replay("orders")
    assert frame_["id"].tolist()[:2] == [1, 2] and str(frame_["id"].dtype) == "Int64"
    assert str(frame_["price"].dtype) == "float64" and frame_["price"].tolist()[:2] == [2.0, 2.5]
    assert str(frame_["paid"].dtype) == "boolean"
    assert str(frame_["ship_to.city"].dtype) == "string" and frame_["ship_to.city"].tolist()[:2] == ["Oslo", "Rome"]
    assert frame_["at"].dt.tz is not None and frame_["at"][0].timestamp() == 1_700_000_000
    assert frame_["value_error"].isna().tolist() == [True, True, False]  # only the unknown id failed...
    assert "4242" in frame_["value_error"][2] and frame_["value"][2] == frame(4242, b"\x02")  # ...and kept its bytes
    raw = lab.replay("orders", raw=True)
    assert lab.schemas.decode(raw["value"][0])["id"] == 1 and raw["id"].tolist()[:2] == [1, 2]


def test_the_registry_survives_compaction_of_its_topic(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path / "data") as lab:
        keep = lab.schemas.register("keep", record())
        lab.schemas.register("gone", record({"name": "g", "type": "int"}))
        lab.schemas.set_compatibility("NONE", "keep")
        lab.schemas.set_compatibility("FULL", "keep")  # the later config record wins
        lab.schemas.delete_subject("gone")
        lab.schemas.delete_subject("gone", permanent=True)
        lab.roll("_schemas")  # sealed, so compaction may rewrite it
        lab.apply_retention()
    with streamlab.connect(tmp_path / "data") as lab:
        assert lab.schemas.subjects() == ["keep"] and lab.schemas.port.subjects(deleted=True) == ["keep"]
        assert lab.schemas.latest("keep").id == keep and lab.schemas.compatibility("keep") == "FULL"
        assert lab.schemas.register("new", record({"name": "h", "type": "int"})) == keep + 2  # ids are not reused


def test_a_foreign_record_in_the_schemas_topic_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with streamlab.connect(tmp_path / "data") as lab:
        schema_id = lab.schemas.register("s", record())
        producer = lab.producer()
        producer.send("_schemas", key={"keytype": "SCHEMA", "subject": "x", "version": 1}, value={"id": "nope"})
        producer.send("_schemas", key=b"\xff not json", value=b"?")
        producer.flush(10)
        producer.close()
    with streamlab.connect(tmp_path / "data") as lab:
        assert lab.schemas.subjects() == ["s"] and lab.schemas.latest("s").id == schema_id
    assert "offset 2 is not a registry record" in caplog.text


ORDER_V1 = {"type": "record", "name": "Order", "fields": [
    {"name": "id", "type": "long"},
    {"name": "n", "type": ["null", "int"], "default": None},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
    {"name": "tags", "type": {"type": "array", "items": {"type": "long", "logicalType": "timestamp-millis"}}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}},
    {"name": "ship", "type": ["null", {"type": "record", "name": "Addr", "fields": [
        {"name": "city", "type": "string"}, {"name": "since", "type": {"type": "int", "logicalType": "date"}}]}],
     "default": None},
]}  # fmt: skip
ORDER_V2 = {"type": "record", "name": "Order", "fields": [
    {"name": "id", "type": "long"}, {"name": "extra", "type": "double", "default": 0.0},
]}  # fmt: skip


def test_replay_types_avro_columns_from_the_schema_across_versions(lab: streamlab.Lab) -> None:
    import datetime as dt
    import uuid
    from decimal import Decimal

    lab.schemas.set_compatibility("NONE", "o-value")
    v1, v2 = lab.schemas.register("o-value", ORDER_V1), lab.schemas.register("o-value", ORDER_V2)
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    ref = uuid.UUID(int=7)
    with lab.producer() as producer:
        producer.send("o", value=lab.schemas.encode({
            "id": 2**60, "n": None, "at": at, "day": dt.date(2026, 1, 2),
            "amount": Decimal("1.25"), "ref": ref, "kind": "B", "tags": [at], "attrs": {"a": 1},
            "ship": {"city": "Oslo", "since": dt.date(2020, 5, 6)}}, v1))  # fmt: skip
        producer.send("o", value=lab.schemas.encode({"id": 3, "extra": 1.5}, v2))
        producer.send("o", value=frame(v1, b"\x02"))  # truncated: this row alone fails
        producer.send("o", value=lab.schemas.encode({
            "id": -1, "n": 5, "at": 0, "day": 0, "amount": Decimal("0.00"), "ref": str(ref), "kind": "A",
            "tags": [], "attrs": {}, "ship": None}, v1))  # fmt: skip
    df = lab.replay("o")
    dtypes = {name: str(df[name].dtype) for name in ("id", "n", "at", "ref", "kind", "ship.city", "extra")}
    assert dtypes == {"id": "Int64", "n": "Int64", "at": "datetime64[us, UTC]",
                      "ref": "string", "kind": "string", "ship.city": "string", "extra": "float64"}  # fmt: skip
    assert df["id"].tolist()[:2] == [2**60, 3] and df["id"][3] == -1 and pd.isna(df["id"][2])
    assert pd.isna(df["n"][0]) and df["n"][3] == 5  # a null, and 5
    assert df["at"][0] == pd.Timestamp(at) and df["at"][3] == pd.Timestamp(0, tz="UTC") and pd.isna(df["at"][1])
    assert df["day"][0] == dt.date(2026, 1, 2) and df["amount"][0] == Decimal("1.25")  # exact, as DuckDB's DATE/DECIMAL
    assert df["ref"][0] == str(ref) and df["kind"].tolist()[::3] == ["B", "A"]
    assert (
        df["tags"][0] == [at.replace(microsecond=678000)] and df["tags"][3] == [] and df["attrs"][0] == {"a": 1}
    )  # lists and dicts as decoded
    assert df["ship.city"][0] == "Oslo" and df["ship.since"][0] == dt.date(2020, 5, 6) and pd.isna(df["ship.city"][3])
    assert df["extra"][1] == 1.5 and pd.isna(df["extra"][0])  # a field of version 2 only
    assert df["value_error"].notna().tolist() == [False, False, True, False]
    assert "does not decode as AVRO" in df["value_error"][2] and df["value"][2] == frame(v1, b"\x02")


def test_replay_of_avro_with_references_and_reused_named_types(lab: streamlab.Lab) -> None:
    import datetime as dt

    stamp = {"type": "record", "name": "Stamp", "namespace": "t",
             "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}  # fmt: skip
    lab.schemas.register("stamp", stamp)
    uses = {"type": "record", "name": "Event", "namespace": "t",
            "fields": [{"name": "first", "type": "t.Stamp"},
                       {"name": "rest", "type": {"type": "array", "items": "t.Stamp"}}]}  # fmt: skip
    sid = lab.schemas.register("ev-value", uses, references=[{"name": "t.Stamp", "subject": "stamp", "version": 1}])
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with lab.producer() as producer:
        producer.send("ev", value=lab.schemas.encode({"first": {"at": at}, "rest": [{"at": at}]}, sid))
    df = lab.replay("ev")
    assert str(df["first.at"].dtype) == "datetime64[us, UTC]" and df["first.at"][0] == pd.Timestamp(at)
    assert df["rest"][0] == [{"at": at}]  # the same named type inside an array keeps its datetime
