"""The `streamlab` command on a directory that `streamlab serve` holds: read-only commands
go through the server's kafka:// address (and its Schema Registry, when it serves one)
instead of failing on the lock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from harness import ServerProcess, free_port

import streamlab
from streamlab.storage.lock import served


def test_read_only_commands_use_the_server_that_holds_the_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with streamlab.connect(data) as lab:
        lab.create_topic("orders", partitions=2)
        with lab.producer() as p:
            for i in range(6):
                p.send("orders", value={"id": i}, key=f"k{i}")
    server = ServerProcess(data, tmp_path / "server.log")
    server.start()
    try:

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "streamlab.cli.main", "--data", str(data), *args],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        listing = cli("topics", "list")
        assert listing.returncode == 0, listing.stderr
        assert f"using kafka://127.0.0.1:{server.port}" in listing.stderr
        assert listing.stdout.splitlines()[1].split()[:2] == ["orders", "2"]
        consumed = cli("consume", "orders", "--from-beginning", "--count", "6", "--timeout", "10")
        assert consumed.returncode == 0, consumed.stderr
        assert sorted(consumed.stdout.splitlines()) == sorted(f'{{"id": {i}}}' for i in range(6))
    finally:
        server.kill()


@pytest.mark.slow  # a server and two CLI processes
def test_consume_and_replay_decode_through_the_registry_the_server_serves(tmp_path: Path) -> None:
    """The lock file names the served registry beside the Kafka address, so the CLI on the
    directory decodes what a confluent-kafka AvroSerializer wrote through it."""
    data = tmp_path / "data"
    with streamlab.connect(data) as lab:
        lab.create_topic("clicks")
    registry_port = free_port()
    server = ServerProcess(data, tmp_path / "server.log", args=("--schema-registry-port", str(registry_port)))
    server.start()
    producer = Producer({"bootstrap.servers": server.bootstrap})
    url = f"http://127.0.0.1:{registry_port}"
    client = SchemaRegistryClient({"url": url})
    try:
        assert served(data) == (f"kafka://127.0.0.1:{server.port}", url)
        schema = json.dumps({"type": "record", "name": "Click", "fields": [
            {"name": "user", "type": "string"}, {"name": "n", "type": "long"}]})  # fmt: skip
        serialize = AvroSerializer(client, schema)
        for i, user in enumerate(["ada", "bob", "cy"]):
            producer.produce("clicks", value=serialize({"user": user, "n": i},
                                                       SerializationContext("clicks", MessageField.VALUE)))  # fmt: skip
        assert producer.flush(10) == 0

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "streamlab.cli.main", "--data", str(data), *args],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        consumed = cli("consume", "clicks", "--from-beginning", "--count", "3", "--timeout", "10")
        assert consumed.returncode == 0, consumed.stderr
        assert f"and its Schema Registry at {url}" in consumed.stderr
        assert consumed.stdout.splitlines() == [
            '{"user": "ada", "n": 0}', '{"user": "bob", "n": 1}', '{"user": "cy", "n": 2}'
        ]  # fmt: skip
        out = tmp_path / "clicks.csv"
        replayed = cli("replay", "clicks", "--out", str(out))
        assert replayed.returncode == 0, replayed.stderr
        frame = pd.read_csv(out)
        assert frame["user"].tolist() == ["ada", "bob", "cy"] and frame["n"].tolist() == [0, 1, 2]
    finally:
        client.close()
        server.kill()
    assert served(data) == (None, None)


def test_lab_serve_serves_the_schema_registry_in_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with streamlab.connect(data) as lab:
        assert lab.schema_registry_url is None
        address = lab.serve(schema_registry_port=0)
        url = lab.schema_registry_url
        assert url is not None and url.startswith("http://127.0.0.1:")
        assert served(data) == (f"kafka://{address}", url)
        assert lab.serve() == address  # the running endpoint, registry and all
        client = SchemaRegistryClient({"url": url})
        try:
            schema = json.dumps({"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]})
            sid = client.register_schema("r-value", Schema(schema, "AVRO"))
        finally:
            client.close()
        assert json.loads(lab.schemas.get(sid).schema) == json.loads(schema)  # one registry: the directory's
    assert served(data) == (None, None)
