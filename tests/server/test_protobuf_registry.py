"""Protobuf through ``streamlab serve --schema-registry-port``: evolving .proto schemas
registered with confluent-kafka's ``SchemaRegistryClient`` are checked for compatibility
(Confluent's rules, fields by number), records its ``ProtobufSerializer`` writes and
records framed under .proto text schemas are decoded by ``lab.replay`` without any
generated class."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from harness import ServerProcess, free_port

import streamlab
from streamlab.model.schemas.proto import descriptor_pool
from streamlab.model.schemas.types import Schema as StoredSchema

pytest.importorskip("proto_schema_parser")

CLICK_V1 = """
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";

message Click {
  string user = 1;
  int32 n = 2;
  Page page = 3;
  google.protobuf.Timestamp at = 4;
  map<string, string> tags = 5;
  message Page { string path = 1; }
}
"""


def _evolved(old: str, new: str) -> str:
    return CLICK_V1.replace(old, new)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    tmp = tmp_path_factory.mktemp("protobuf")
    port = free_port()
    server = ServerProcess(tmp / "data", tmp / "server.log", args=("--schema-registry-port", str(port)))
    server.start()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.kill()


@pytest.fixture
def client(served: tuple[ServerProcess, str]) -> Iterator[SchemaRegistryClient]:
    registry = SchemaRegistryClient({"url": served[1]})
    try:
        yield registry
    finally:
        registry.close()


def _subject() -> str:
    return f"clicks-{uuid.uuid4().hex[:8]}-value"


def _refused(client: SchemaRegistryClient, subject: str, text: str) -> str:
    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema(subject, Schema(text, "PROTOBUF"))
    assert info.value.http_status_code == 409
    return str(info.value.error_message)


def test_backward_rules_for_evolving_proto_schemas(client: SchemaRegistryClient) -> None:
    subject = _subject()
    first = client.register_schema(subject, Schema(CLICK_V1, "PROTOBUF"))
    # compatible: a field added, a field removed, int32 widened to int64 (one varint encoding)
    added = _evolved("  map<string, string> tags = 5;", "  map<string, string> tags = 5;\n  string device = 6;")
    assert client.register_schema(subject, Schema(added, "PROTOBUF")) > first
    removed = _evolved("  map<string, string> tags = 5;\n", "")
    assert client.register_schema(subject, Schema(removed, "PROTOBUF")) > first
    widened = _evolved("int32 n = 2;", "int64 n = 2;").replace("  map<string, string> tags = 5;\n", "")
    assert client.register_schema(subject, Schema(widened, "PROTOBUF")) > first
    assert client.get_versions(subject) == [1, 2, 3, 4]
    # incompatible with the latest (widened): a scalar type change, a message for a scalar,
    # a renumbered field whose old number now holds another type, a message gone
    assert "FIELD_SCALAR_KIND_CHANGED: shop.Click.n (field 2) type int64 became string" in _refused(
        client, subject, widened.replace("int64 n = 2;", "string n = 2;"))  # fmt: skip
    assert "FIELD_KIND_CHANGED: shop.Click.user (field 1) was a scalar, is a message" in _refused(
        client, subject, widened.replace("string user = 1;", "Page user = 1;"))  # fmt: skip
    renumbered = widened.replace("string user = 1;", "string user = 7;").replace("int64 n = 2;", "int64 n = 1;")
    assert "FIELD_SCALAR_KIND_CHANGED: shop.Click.user (field 1) type string became int64" in _refused(
        client, subject, renumbered)  # fmt: skip
    page_gone = widened.replace("  Page page = 3;\n", "").replace("  message Page { string path = 1; }\n", "")
    assert "MESSAGE_REMOVED: shop.Click.Page" in _refused(client, subject, page_gone)
    assert "PACKAGE_CHANGED" in _refused(client, subject, widened.replace("package shop;", "package store;"))
    with pytest.raises(SchemaRegistryError, match="invalid PROTOBUF schema"):
        client.register_schema(_subject(), Schema("message {", "PROTOBUF"))


def test_forward_and_full_levels(client: SchemaRegistryClient) -> None:
    subject = _subject()
    client.register_schema(subject, Schema(CLICK_V1, "PROTOBUF"))
    client.set_compatibility(subject, "FORWARD")
    with_message = CLICK_V1 + "\nmessage Session { string id = 1; }\n"
    # FORWARD: the old schema reads new data; a message only the new schema has is missing there
    assert "MESSAGE_REMOVED: shop.Session" in _refused(client, subject, with_message)
    client.set_compatibility(subject, "FULL")
    assert client.register_schema(subject, Schema(_evolved("int32 n = 2;", "uint32 n = 2;"), "PROTOBUF")) > 0
    assert "FIELD_NAMED_TYPE_CHANGED" in _refused(
        client, subject, CLICK_V1.replace("Page page = 3;", "google.protobuf.Timestamp page = 3;"))  # fmt: skip
    client.set_compatibility(subject, "NONE")
    assert client.register_schema(subject, Schema(with_message, "PROTOBUF")) > 0


def _click_class() -> Any:
    """The message class of CLICK_V1, as an application's generated code would have it."""
    from google.protobuf import message_factory

    pool, _ = descriptor_pool(StoredSchema(CLICK_V1, "PROTOBUF"), resolve=lambda ref: pytest.fail(str(ref)))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Click"))


def test_replay_decodes_protobuf_from_the_serializer_and_from_proto_text(
    served: tuple[ServerProcess, str], client: SchemaRegistryClient
) -> None:
    server, url = served
    topic = f"clicks-{uuid.uuid4().hex[:8]}"
    click = _click_class()
    ada = click(user="ada", n=3, tags={"ab": "b"})
    ada.page.path = "/home"
    ada.at.seconds = 1_767_571_200
    bob = click(user="bob", n=-1)
    producer = Producer({"bootstrap.servers": server.bootstrap})
    # confluent-kafka's serializer registers a base64 descriptor under <topic>-value
    serialize = ProtobufSerializer(click, client, {"use.deprecated.format": False})
    producer.produce(topic, value=serialize(ada, SerializationContext(topic, MessageField.VALUE)))
    # .proto text registered by a SchemaRegistryClient user; the record framed under its id
    # (magic byte, id, message index 0) with the message serialized by protobuf itself
    text_id = client.register_schema(f"{topic}-text", Schema(CLICK_V1, "PROTOBUF"))
    producer.produce(topic, value=b"\x00" + text_id.to_bytes(4, "big") + b"\x00" + bob.SerializeToString())
    assert producer.flush(10) == 0
    del producer  # librdkafka would go on reconnecting after the module's server stops
    with streamlab.connect(f"kafka://{server.bootstrap}", schema_registry=url) as lab:
        frame = lab.replay(topic)
        assert frame["user"].tolist() == ["ada", "bob"] and frame["n"].tolist() == [3, -1]
        assert frame["page.path"].tolist()[0] == "/home"
        assert frame["tags.ab"].tolist()[0] == "b"  # a map spreads as a record does
        assert frame["at"].tolist()[0] == pd.Timestamp("2026-01-05", tz="UTC")  # a Timestamp as a datetime
        assert "value_error" not in frame.columns
        assert lab.schemas.get(text_id).schema == CLICK_V1.strip()  # stored as registered (trimmed)


TYPED = """
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";

message Order {
  int64 id = 1;
  uint64 big = 2;
  google.protobuf.Timestamp at = 3;
  google.protobuf.Duration took = 4;
  google.protobuf.Int64Value maybe = 5;
  Status status = 6;
  bytes blob = 7;
  Address ship_to = 8;
  repeated string tags = 9;
  enum Status { NEW = 0; PAID = 1; }
  message Address { string city = 1; }
}
"""


def test_protobuf_fields_replay_with_real_dtypes(
    served: tuple[ServerProcess, str], client: SchemaRegistryClient
) -> None:
    from google.protobuf import message_factory

    server, url = served
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    pool, _ = descriptor_pool(StoredSchema(TYPED, "PROTOBUF"), resolve=lambda ref: pytest.fail(str(ref)))
    order = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
    first = order(id=2**62, big=2**64 - 1, status=1, blob=b"\x00\xff", tags=["a", "b"])
    first.at.seconds, first.at.nanos = 1_767_571_200, 250_000_000
    first.took.seconds = 90
    first.maybe.value = -7
    first.ship_to.city = "Oslo"
    second = order(id=-1)  # every other field unset: defaults, or NA where protobuf knows "unset"
    producer = Producer({"bootstrap.servers": server.bootstrap})
    serialize = ProtobufSerializer(order, client, {"use.deprecated.format": False})
    for message in (first, second):
        producer.produce(topic, value=serialize(message, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(10) == 0
    del producer
    with streamlab.connect(f"kafka://{server.bootstrap}", schema_registry=url) as lab:
        frame = lab.replay(topic)
    assert str(frame["id"].dtype) == "Int64" and frame["id"].tolist() == [2**62, -1]  # exact, not text
    assert str(frame["big"].dtype) == "UInt64" and frame["big"].tolist() == [2**64 - 1, 0]
    assert str(frame["at"].dtype).startswith("datetime64") and frame["at"].dt.tz is not None
    assert frame["at"][0] == pd.Timestamp("2026-01-05 00:00:00.25", tz="UTC") and pd.isna(frame["at"][1])
    assert str(frame["took"].dtype).startswith("timedelta64") and frame["took"][0] == pd.Timedelta(seconds=90)
    assert pd.isna(frame["took"][1])
    assert str(frame["maybe"].dtype) == "Int64" and frame["maybe"][0] == -7 and pd.isna(frame["maybe"][1])
    assert str(frame["status"].dtype) == "string" and frame["status"].tolist() == ["PAID", "NEW"]
    assert frame["blob"].tolist() == [b"\x00\xff", b""]
    assert frame["ship_to.city"].tolist()[0] == "Oslo" and pd.isna(frame["ship_to.city"][1])
    assert frame["tags"].tolist() == [["a", "b"], []]
    assert "value_error" not in frame.columns
