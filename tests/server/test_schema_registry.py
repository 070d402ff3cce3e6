"""confluent-kafka's Schema Registry client and serializers against
``streamlab serve --schema-registry-port``: registration, lookups, compatibility levels,
Avro/JSON Schema/Protobuf records through the served broker, Confluent's error bodies,
restarts, and the same schemas in an embedded ``connect(dir)`` afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from harness import ServerProcess, free_port

import streamlab
from streamlab.errors import UnsupportedOperationError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Registry:
    def __init__(self, data: Path, log: Path) -> None:
        self.registry_port = free_port()
        self.server = ServerProcess(data, log, args=("--schema-registry-port", str(self.registry_port)))
        self.clients: list[SchemaRegistryClient] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    def client(self) -> SchemaRegistryClient:
        """A new client (no cache), closed by :meth:`close_clients`."""
        client = SchemaRegistryClient({"url": self.url})
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        while self.clients:
            self.clients.pop().close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    tmp = tmp_path_factory.mktemp("registry")
    served = Registry(tmp / "data", tmp / "server.log")
    served.server.start()
    try:
        yield served
    finally:
        served.server.kill()


@pytest.fixture(autouse=True)
def _close_clients(registry: Registry) -> Iterator[None]:
    yield
    registry.close_clients()


def avro_record(*fields: dict[str, Any]) -> str:
    return json.dumps({"type": "record", "name": "Click", "namespace": "shop",
                       "fields": [{"name": "user", "type": "string"}, *fields]})  # fmt: skip


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def http(registry: Registry, method: str, path: str, body: Any = None) -> tuple[int, str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(registry.url + path, data=data, method=method,
                                     headers={"Content-Type": CONTENT_TYPE})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], json.loads(exc.read())


def test_register_fetch_by_id_latest_and_lookup(registry: Registry) -> None:
    client = registry.client()
    subject = unique("clicks") + "-value"
    first = client.register_schema(subject, Schema(avro_record(), "AVRO"))
    assert client.register_schema(subject, Schema(avro_record(), "AVRO")) == first
    second = client.register_schema(subject, Schema(avro_record({"name": "n", "type": "int", "default": 0}), "AVRO"))
    assert second == first + 1
    fetched = registry.client().get_schema(first)  # a fresh client: no cache
    assert json.loads(fetched.schema_str) == json.loads(avro_record()) and fetched.schema_type == "AVRO"
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version, latest.subject) == (second, 2, subject)
    assert client.get_versions(subject) == [1, 2]
    assert subject in client.get_subjects()
    assert client.get_version(subject, 1).schema_id == first
    assert client.lookup_schema(subject, Schema(avro_record(), "AVRO")).version == 1
    assert sorted(client.get_schema_types()) == ["AVRO", "JSON", "PROTOBUF"]
    assert client.get_subjects_by_schema_id(first) == [subject]
    assert client.get_compatibility() == "BACKWARD"


P = {"name": "p", "type": "string"}  # a field without a default
P_DEFAULT = {"name": "p", "type": "string", "default": "/"}
Q_DEFAULT = {"name": "q", "type": "int", "default": 0}
LEVEL_CASES = [
    # level, the versions registered in order, whether the last is accepted
    ("BACKWARD", [avro_record(), avro_record(P_DEFAULT)], True),
    ("BACKWARD", [avro_record(), avro_record(P)], False),
    ("FORWARD", [avro_record(), avro_record(P)], True),
    ("FORWARD", [avro_record(P), avro_record()], False),
    ("FULL", [avro_record(), avro_record(P_DEFAULT)], True),
    ("FULL", [avro_record(), avro_record(P)], False),
    ("FULL", [avro_record(P), avro_record()], False),
    ("NONE", [avro_record({"name": "p", "type": "int"}), avro_record(P)], True),
    # transitive: the last is fine against the one before, not against the first
    ("BACKWARD", [avro_record(), avro_record(P_DEFAULT), avro_record(P)], True),
    ("BACKWARD_TRANSITIVE", [avro_record(), avro_record(P_DEFAULT), avro_record(P)], False),
    ("FORWARD", [avro_record(P), avro_record(P_DEFAULT, Q_DEFAULT), avro_record(Q_DEFAULT)], True),
    ("FORWARD_TRANSITIVE", [avro_record(P), avro_record(P_DEFAULT, Q_DEFAULT), avro_record(Q_DEFAULT)], False),
    ("FULL_TRANSITIVE", [avro_record(), avro_record(P_DEFAULT), avro_record(Q_DEFAULT)], True),
    ("FULL_TRANSITIVE", [avro_record(), avro_record(P_DEFAULT), avro_record(P)], False),
]


@pytest.mark.parametrize(("level", "versions", "accepted"), LEVEL_CASES)
def test_compatibility_levels_through_the_client(
    registry: Registry, level: str, versions: list[str], accepted: bool
) -> None:
    client = registry.client()
    subject = unique(level.lower())
    assert client.set_compatibility(subject, level)["compatibility"] == level
    assert client.get_compatibility(subject) == level
    for schema in versions[:-1]:
        client.register_schema(subject, Schema(schema, "AVRO"))
    last = Schema(versions[-1], "AVRO")
    assert client.test_compatibility(subject, last) is accepted
    if accepted:
        client.register_schema(subject, last)
        assert client.get_versions(subject) == list(range(1, len(versions) + 1))
    else:
        with pytest.raises(SchemaRegistryError) as info:
            client.register_schema(subject, last)
        assert (info.value.http_status_code, info.value.error_code) == (409, 409)
        assert client.get_versions(subject) == list(range(1, len(versions)))


def test_json_schema_levels_through_the_client(registry: Registry) -> None:
    client = registry.client()
    subject = unique("json")
    closed = {"type": "object", "properties": {"user": {"type": "string"}}, "additionalProperties": False}
    client.register_schema(subject, Schema(json.dumps(closed), "JSON"))
    optional = {**closed, "properties": {"user": {"type": "string"}, "page": {"type": "string"}}}
    required = {**optional, "required": ["page"]}
    assert not client.test_compatibility(subject, Schema(json.dumps(required), "JSON"))
    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema(subject, Schema(json.dumps(required), "JSON"))
    assert info.value.error_code == 409
    client.register_schema(subject, Schema(json.dumps(optional), "JSON"))
    assert client.get_latest_version(subject).schema.schema_type == "JSON"


def _topic(registry: Registry) -> str:
    name = unique("events")
    admin = AdminClient({"bootstrap.servers": registry.server.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(10)
    return name


def _produce(registry: Registry, topic: str, serializer: Any, values: list[Any]) -> None:
    producer = Producer({"bootstrap.servers": registry.server.bootstrap})
    for value in values:
        producer.produce(topic, value=serializer(value, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(10) == 0


def _consume(registry: Registry, topic: str, count: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": registry.server.bootstrap, "group.id": unique("g"),
                         "enable.auto.commit": False})  # fmt: skip
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got: list[bytes] = []
        for _ in range(40):
            for message in consumer.consume(count, 0.25):
                assert message.error() is None
                got.append(message.value())
            if len(got) >= count:
                break
        return got
    finally:
        consumer.close()


def test_avro_serializer_producer_and_deserializer_consumer(registry: Registry) -> None:
    client, topic = registry.client(), _topic(registry)
    schema = avro_record(
        {"name": "n", "type": "long"}, {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}
    )
    serializer = AvroSerializer(client, schema)
    values = [{"user": f"u{i}", "n": i, "ts": 1_700_000_000_000 + i} for i in range(5)]
    _produce(registry, topic, serializer, values)
    deserializer = AvroDeserializer(registry.client())
    payloads = _consume(registry, topic, len(values))
    decoded = [deserializer(p, SerializationContext(topic, MessageField.VALUE)) for p in payloads]
    assert [(d["user"], d["n"]) for d in decoded] == [(v["user"], v["n"]) for v in values]
    assert decoded[0]["ts"].timestamp() == 1_700_000_000  # a tz-aware datetime from the logical type
    # registered under the topic's subject (TopicNameStrategy), and a kafka:// lab decodes it
    with streamlab.connect(f"kafka://{registry.server.bootstrap}", schema_registry=registry.url) as lab:
        latest = lab.schemas.latest(f"{topic}-value")
        assert payloads[0][1:5] == latest.id.to_bytes(4, "big")
        assert lab.schemas.decode(payloads[2])["user"] == "u2"
        assert f"{topic}-value" in lab.schemas.subjects()
        replayed = lab.replay(topic)
        assert replayed["user"].tolist() == [v["user"] for v in values] and str(replayed["n"].dtype) == "Int64"
        assert lab.schemas.check_compatibility(f"{topic}-value", schema.replace('"long"}', '"int"}', 1)) is not None


def test_json_serializer_round_trip(registry: Registry) -> None:
    client, topic = registry.client(), _topic(registry)
    schema = json.dumps({"title": "Click", "type": "object", "properties": {"user": {"type": "string"},
                         "n": {"type": "integer"}}, "required": ["user"]})  # fmt: skip
    values = [{"user": "ada", "n": 1}, {"user": "bob"}]
    _produce(registry, topic, JSONSerializer(schema, client), values)
    deserializer = JSONDeserializer(schema, schema_registry_client=client)
    payloads = _consume(registry, topic, 2)
    assert [deserializer(p, SerializationContext(topic, MessageField.VALUE)) for p in payloads] == values
    assert registry.client().get_latest_version(f"{topic}-value").schema.schema_type == "JSON"


def _click_message_class() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name="shop/click.proto", package="shop", syntax="proto3")
    message = proto.message_type.add(name="Click")
    message.field.add(name="user", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)  # fmt: skip
    message.field.add(name="n", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Click"))


def test_protobuf_serializer_round_trip(registry: Registry) -> None:
    click = _click_message_class()
    client, topic = registry.client(), _topic(registry)
    serializer = ProtobufSerializer(click, client, {"use.deprecated.format": False})
    _produce(registry, topic, serializer, [click(user="ada", n=7)])
    payload = _consume(registry, topic, 1)[0]
    deserializer = ProtobufDeserializer(click, {"use.deprecated.format": False})
    assert deserializer(payload, SerializationContext(topic, MessageField.VALUE)) == click(user="ada", n=7)
    assert client.get_latest_version(f"{topic}-value").schema.schema_type == "PROTOBUF"
    with streamlab.connect(f"kafka://{registry.server.bootstrap}", schema_registry=registry.url) as lab:
        assert lab.schemas.decode(payload) == {"user": "ada", "n": 7}  # int64 as int, not JSON mapping text


def test_error_codes_and_content_type(registry: Registry) -> None:
    missing = unique("missing")
    assert http(registry, "GET", f"/subjects/{missing}/versions") == (
        404, CONTENT_TYPE, {"error_code": 40401, "message": f"Subject '{missing}' not found."})  # fmt: skip
    subject = unique("known")
    status, content_type, body = http(registry, "POST", f"/subjects/{subject}/versions", {"schema": avro_record()})
    assert (status, content_type) == (200, CONTENT_TYPE) and isinstance(body["id"], int)
    assert http(registry, "GET", f"/subjects/{subject}/versions/7")[2]["error_code"] == 40402
    assert http(registry, "GET", f"/subjects/{subject}/versions/seven")[2]["error_code"] == 42202
    not_found = {"error_code": 40403, "message": "Schema 987654 not found"}
    assert http(registry, "GET", "/schemas/ids/987654")[::2] == (404, not_found)
    status, _, body = http(registry, "POST", f"/subjects/{subject}/versions", {"schema": '{"type": "nope"}'})
    assert (status, body["error_code"]) == (422, 42201)
    status, _, body = http(registry, "POST", f"/subjects/{subject}/versions",
                           {"schema": avro_record({"name": "x", "type": "int"})})  # fmt: skip
    assert (status, body["error_code"]) == (409, 409)
    assert http(registry, "PUT", f"/config/{subject}", {"compatibility": "SIDEWAYS"})[2]["error_code"] == 42203
    # the raw schema, a lookup, and a soft delete
    status, _, raw = http(registry, "GET", f"/subjects/{subject}/versions/latest/schema")
    assert status == 200 and raw == json.loads(avro_record())
    assert http(registry, "POST", f"/subjects/{subject}", {"schema": avro_record()})[2]["version"] == 1
    other = {"schema": avro_record({"name": "z", "type": "int"})}
    assert http(registry, "POST", f"/subjects/{subject}", other)[2]["error_code"] == 40403
    assert http(registry, "DELETE", f"/subjects/{subject}/versions/1") == (200, CONTENT_TYPE, 1)
    assert http(registry, "GET", f"/subjects/{subject}/versions")[2]["error_code"] == 40401
    assert http(registry, "GET", f"/subjects/{subject}/versions?deleted=true")[2] == [1]
    soft_deleted = http(registry, "GET", f"/subjects/{subject}/versions/1?deleted=true")[2]
    assert http(registry, "GET", f"/schemas/ids/{soft_deleted['id']}")[0] == 200  # ids outlive soft deletes
    with pytest.raises(SchemaRegistryError) as info:
        registry.client().get_latest_version(missing)
    assert info.value.error_code == 40401


@pytest.mark.slow  # two server starts and a graceful stop
def test_restart_keeps_schemas_and_ids_and_connect_dir_sees_them(tmp_path: Path) -> None:
    served = Registry(tmp_path / "data", tmp_path / "server.log")
    served.server.start()
    try:
        client, topic = served.client(), _topic(served)
        serializer = AvroSerializer(client, avro_record({"name": "n", "type": "long"}))
        _produce(served, topic, serializer, [{"user": "ada", "n": 1}, {"user": "bob", "n": 2}])
        v1 = client.get_latest_version(f"{topic}-value").schema_id
        client.set_compatibility(f"{topic}-value", "FULL")
        v2 = client.register_schema(
            f"{topic}-value",
            Schema(avro_record({"name": "n", "type": "long"}, {"name": "p", "type": "int", "default": 0})),
        )
        served.server.restart(kill=False)
        again = served.client()  # no cache
        assert again.get_versions(f"{topic}-value") == [1, 2]
        assert [again.get_version(f"{topic}-value", v).schema_id for v in (1, 2)] == [v1, v2]
        assert again.get_compatibility(f"{topic}-value") == "FULL"
        assert again.register_schema(f"{topic}-value", Schema(avro_record({"name": "n", "type": "long"}))) == v1
        next_id = again.register_schema(unique("other"), Schema(avro_record({"name": "zz", "type": "int"})))
        assert next_id == v2 + 1
    finally:
        served.close_clients()
        served.server.stop()
    with streamlab.connect(tmp_path / "data") as lab:
        assert lab.schemas.versions(f"{topic}-value") == [1, 2]
        assert lab.schemas.latest(f"{topic}-value").id == v2
        assert lab.schemas.compatibility(f"{topic}-value") == "FULL"
        raw = lab.replay(topic, raw=True)
        assert [lab.schemas.decode(v) for v in raw["value"]] == [{"user": "ada", "n": 1}, {"user": "bob", "n": 2}]
        replayed = lab.replay(topic)  # decoded through the directory's registry
        assert replayed[["user", "n"]].values.tolist() == [["ada", 1], ["bob", 2]]
        assert "value" not in replayed.columns


def test_kafka_lab_on_librdkafkas_mock_cluster_with_the_served_registry(registry: Registry) -> None:
    from streamlab.kafka.mock_cluster import MockCluster

    with MockCluster(brokers=1) as cluster:
        topic = unique("mock")
        cluster.create_topic(topic)
        serializer = AvroSerializer(registry.client(), avro_record({"name": "n", "type": "long"}))
        producer = Producer({"bootstrap.servers": cluster.bootstrap})
        for i in range(3):
            producer.produce(
                topic, value=serializer({"user": f"u{i}", "n": i}, SerializationContext(topic, MessageField.VALUE))
            )
        assert producer.flush(10) == 0
        with streamlab.connect(f"kafka://{cluster.bootstrap}", schema_registry=registry.url) as lab:
            assert lab.replay(topic)[["user", "n"]].values.tolist() == [["u0", 0], ["u1", 1], ["u2", 2]]
            assert lab.schemas.latest(f"{topic}-value").version == 1
        with streamlab.connect(f"kafka://{cluster.bootstrap}") as lab:  # no registry: the bytes as they are
            assert lab.replay(topic, raw=True)["value"][0][0] == 0
            with pytest.raises(UnsupportedOperationError, match="schema_registry="):
                lab.schemas.subjects()


def test_serve_refuses_an_unauthenticated_registry_off_loopback(tmp_path: Path) -> None:
    args = ["--host", "0.0.0.0", "--port", "0", "--user", "u:p", "--schema-registry-port", "0"]
    done = subprocess.run([sys.executable, "-m", "streamlab.cli.main", "serve", "--data", str(tmp_path / "d"), *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 2 and "no authentication" in done.stderr
    assert not (tmp_path / "d").exists()  # refused before the directory was opened
