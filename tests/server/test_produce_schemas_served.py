"""What a notebook writes with ``value_format="avro"``/``"jsonschema"``, read by other Kafka
applications: confluent-kafka consumers with its AvroDeserializer and JSONDeserializer
against ``streamlab serve --schema-registry-port``, for an embedded lab (the directory then
served) and for a ``kafka://`` lab producing through the served broker and registry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from harness import ServerProcess, free_port

import streamlab
from streamlab.errors import ConfigError, IncompatibleSchemaError


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "user": ["ada", "bob", None],
        "n": pd.array([1, None, 3], dtype="Int64"),
        "at": pd.to_datetime([1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002], unit="ms", utc=True),
        "who": ["k1", "k2", "k1"],
    })  # fmt: skip


def served(data: Path, log: Path) -> tuple[ServerProcess, str]:
    port = free_port()
    server = ServerProcess(data, log, args=("--schema-registry-port", str(port)))
    server.start()
    return server, f"http://127.0.0.1:{port}"


def consume(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})  # fmt: skip
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got: list[Any] = []
        for _ in range(40):
            for message in consumer.consume(count, 0.25):
                assert message.error() is None
                got.append(message)
            if len(got) >= count:
                break
        return got
    finally:
        consumer.close()


def decoded(url: str, topic: str, messages: list[Any], deserializer: type = AvroDeserializer) -> list[Any]:
    client = SchemaRegistryClient({"url": url})
    try:
        value = (
            deserializer(client)
            if deserializer is AvroDeserializer
            else deserializer(None, schema_registry_client=client)
        )
        return [value(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in messages]
    finally:
        client.close()


@pytest.mark.slow  # starts a server of its own on the directory the lab wrote
def test_confluent_avro_consumer_reads_what_an_embedded_lab_wrote(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with streamlab.connect(data) as lab:
        lab.create_topic("clicks")
        with lab.producer() as producer:
            producer.send_many("clicks", frame(), key="who", value_format="avro")
            producer.send("clicks", {"user": "cy", "n": 9, "at": None}, value_format="avro")  # the latest version
    server, url = served(data, tmp_path / "server.log")
    try:
        messages = consume(server.bootstrap, "clicks", 4)
        values = decoded(url, "clicks", messages)
        assert [v["user"] for v in values] == ["ada", "bob", None, "cy"]
        assert [v["n"] for v in values] == [1, None, 3, 9]
        assert values[0]["at"] == pd.Timestamp(1_700_000_000_000, unit="ms", tz="UTC")
        assert [m.key() for m in messages[:3]] == [b"k1", b"k2", b"k1"]  # keys as streamlab writes a str
    finally:
        server.kill()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    tmp = tmp_path_factory.mktemp("produce-registry")
    server, url = served(tmp / "data", tmp / "server.log")
    try:
        yield server, url
    finally:
        server.kill()


def test_kafka_lab_produces_avro_through_the_served_registry(registry: tuple[ServerProcess, str]) -> None:
    server, url = registry
    topic = f"k-{uuid.uuid4().hex[:8]}"
    with streamlab.connect(f"kafka://{server.bootstrap}", schema_registry=url) as lab:
        lab.create_topic(topic)
        with lab.producer() as producer:
            producer.send_many(topic, frame().drop(columns="who"), value_format="avro")
            producer.send(topic, {"user": "dee", "n": 4, "at": None}, value_format="avro").result(10)
            # a required field without a default breaks BACKWARD: refused by the served registry
            with pytest.raises(IncompatibleSchemaError):
                producer.send_many(topic, pd.DataFrame({"user": ["x"], "z": [1]}), value_format="avro")
        back = lab.replay(topic)
        assert back["user"].fillna("-").tolist() == ["ada", "bob", "-", "dee"] and back["n"].dtype == "Int64"
        assert lab.schemas.versions(f"{topic}-value") == [1]
    values = decoded(url, topic, consume(server.bootstrap, topic, 4))
    assert [v["n"] for v in values] == [1, None, 3, 4]


def test_kafka_lab_produces_json_schema(registry: tuple[ServerProcess, str]) -> None:
    server, url = registry
    topic = f"j-{uuid.uuid4().hex[:8]}"
    with streamlab.connect(f"kafka://{server.bootstrap}", schema_registry=url) as lab:
        lab.create_topic(topic)
        with lab.producer() as producer:
            producer.send_many(topic, frame().drop(columns="who"), value_format="jsonschema")
    values = decoded(url, topic, consume(server.bootstrap, topic, 3), JSONDeserializer)
    assert values[0] == {"user": "ada", "n": 1, "at": "2023-11-14T22:13:20.000000Z"}


def test_kafka_lab_without_a_registry_refuses_registry_formats(registry: tuple[ServerProcess, str]) -> None:
    server, _ = registry
    topic = f"n-{uuid.uuid4().hex[:8]}"
    with streamlab.connect(f"kafka://{server.bootstrap}") as lab:
        lab.create_topic(topic)
        with lab.producer() as producer, pytest.raises(ConfigError, match="schema_registry="):
            producer.send_many(topic, frame(), value_format="avro")


def test_confluent_protobuf_deserializer_reads_what_a_kafka_lab_wrote(registry: tuple[ServerProcess, str]) -> None:
    from google.protobuf import message_factory

    from streamlab.model.schemas.proto import descriptor_pool
    from streamlab.model.schemas.types import Schema

    server, url = registry
    topic = f"p-{uuid.uuid4().hex[:8]}"
    with streamlab.connect(f"kafka://{server.bootstrap}", schema_registry=url) as lab:
        lab.create_topic(topic)
        with lab.producer() as producer:
            producer.send_many(topic, frame(), key="who", value_format="protobuf", key_format="protobuf")
            producer.send(topic, {"user": "dee", "n": 4}, value_format="protobuf").result(10)  # the latest version
            with pytest.raises(IncompatibleSchemaError):  # field 2 from int64 to string breaks BACKWARD
                producer.send_many(topic, pd.DataFrame({"user": ["x"], "n": ["y"]}), value_format="protobuf")
        back = lab.replay(topic)
        assert back["user"].fillna("-").tolist() == ["ada", "bob", "-", "dee"] and back["n"].dtype == "Int64"
        assert back["n"].isna().tolist() == [False, True, False, False]
        assert back["at"][0] == pd.Timestamp(1_700_000_000_000, unit="ms", tz="UTC") and pd.isna(back["at"][3])
        text = lab.schemas.latest(f"{topic}-value").schema.schema
    # the class an application generates from the registered .proto
    pool, _ = descriptor_pool(Schema(text, "PROTOBUF"), resolve=lambda ref: pytest.fail(str(ref)))
    click = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"streamlab.{topic.replace('-', '_')}_value"))
    client = SchemaRegistryClient({"url": url})
    try:
        deserialize = ProtobufDeserializer(click, {"use.deprecated.format": False}, client)
        messages = consume(server.bootstrap, topic, 4)
        values = [deserialize(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in messages]
    finally:
        client.close()
    assert [v.user for v in values] == ["ada", "bob", "", "dee"] and not values[2].HasField("user")
    assert [v.n for v in values] == [1, 0, 3, 4] and not values[1].HasField("n")
    assert values[0].at.ToMilliseconds() == 1_700_000_000_000
