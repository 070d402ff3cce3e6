"""Producing Avro and JSON Schema (``value_format=``/``key_format=``) behaves the same on
every backend: the embedded lab registers in its directory's registry; the ``kafka://``
labs (on ``streamlab serve`` and on librdkafka's mock cluster) in a served registry given
as ``schema_registry=``. One server with a registry serves this module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import BACKENDS, _server_harness, unique

import streamlab
from streamlab.kafka.mock_cluster import MockCluster


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`streamlab serve --schema-registry-port`: (bootstrap, registry URL)."""
    harness = _server_harness()
    tmp, port = tmp_path_factory.mktemp("serve-registry"), harness.free_port()
    server = harness.ServerProcess(tmp / "data", tmp / "server.log", args=("--schema-registry-port", str(port)))
    server.start()
    try:
        yield server.bootstrap, f"http://127.0.0.1:{port}"
    finally:
        server.kill()


@pytest.fixture(params=BACKENDS)
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[streamlab.Lab]:
    if request.param == "embedded":
        opened = streamlab.connect(tmp_path / "lab")
    else:
        bootstrap, url = request.getfixturevalue("registry_server")
        if request.param == "kafka-mock":
            cluster: MockCluster = request.getfixturevalue("mock_cluster")
            bootstrap = cluster.bootstrap
        opened = streamlab.connect(f"kafka://{bootstrap}", schema_registry=url)
    try:
        yield opened
    finally:
        opened.close()


def test_send_many_and_send_in_avro_replay_typed(lab: streamlab.Lab) -> None:
    topic = unique("avro")
    lab.create_topic(topic)
    df = pd.DataFrame({
        "user": ["ada", "bob"], "n": pd.array([1, None], dtype="Int64"), "ok": [True, False],
        "at": pd.to_datetime([1_700_000_000_000, 1_700_000_000_500], unit="ms", utc=True), "who": ["k1", "k2"],
    })  # fmt: skip
    with lab.producer() as producer:
        producer.send_many(topic, df, key="who", value_format="avro", key_format="avro")
        producer.send(topic, {"user": "cy", "n": 3, "ok": True, "at": None}, key="k3", value_format="avro",
                      key_format="avro").result(10)  # fmt: skip
    subject = lab.schemas.latest(f"{topic}-value")
    assert json.loads(subject.schema.schema)["name"] == f"{topic.replace('-', '_')}_value"
    raw = lab.replay(topic, raw=True)
    assert all(v[0] == 0 and int.from_bytes(v[1:5], "big") == subject.id for v in raw["value"])
    assert [lab.schemas.decode(k) for k in raw["key"]] == ["k1", "k2", "k3"]
    back = lab.replay(topic)
    assert back["key"].tolist() == ["k1", "k2", "k3"]  # Avro keys decoded too
    assert back["user"].tolist() == ["ada", "bob", "cy"] and back["ok"].tolist() == [True, False, True]
    assert back["n"].dtype == "Int64" and back["n"].isna().tolist() == [False, True, False]
    assert back["at"][1] == pd.Timestamp(1_700_000_000_500, unit="ms", tz="UTC") and pd.isna(back["at"][2])


def test_send_many_in_json_schema(lab: streamlab.Lab) -> None:
    topic = unique("jsonschema")
    lab.create_topic(topic)
    with lab.producer() as producer:
        producer.send_many(topic, pd.DataFrame({"user": ["ada"], "n": [7]}), value_format="jsonschema")
    assert lab.schemas.latest(f"{topic}-value").schema.schema_type == "JSON"
    back = lab.replay(topic)
    assert back[["user", "n"]].values.tolist() == [["ada", 7]]


def test_poll_and_poll_frame_decode_framed_records(lab: streamlab.Lab) -> None:
    topic = unique("polled")
    lab.create_topic(topic)
    with lab.producer() as producer:
        producer.send_many(topic, pd.DataFrame({"user": ["ada", "bob"], "n": pd.array([1, None], "Int64")}),
                           value_format="avro")  # fmt: skip
        producer.send(topic, b"\x00\x00\x00\x7f\xffnot framed").result(10)  # looks framed, is not
    with lab.consumer(topic, auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        records: list[Any] = []
        for _ in range(20):
            records += consumer.poll(timeout=0.5)
            if len(records) >= 3:
                break
        assert [r.value for r in records] == [{"user": "ada", "n": 1}, {"user": "bob", "n": None},
                                              b"\x00\x00\x00\x7f\xffnot framed"]  # fmt: skip
        consumer.seek_to_beginning()
        frame = pd.DataFrame()
        for _ in range(20):
            frame = consumer.poll_frame(timeout=0.5)
            if len(frame):
                break
        assert frame["user"].tolist()[:2] == ["ada", "bob"] and frame["n"].dtype == "Int64"
    with lab.consumer(topic, auto_offset_reset="earliest", value_format="bytes") as consumer:
        polled: list[Any] = []
        for _ in range(20):
            polled += consumer.poll(timeout=0.5)
            if polled:
                break
        assert polled[0].value[0] == 0 and lab.schemas.decode(polled[0].value) == {"user": "ada", "n": 1}


def test_sql_decodes_registry_framed_topics(lab: streamlab.Lab) -> None:
    framed, plain = unique("sqlavro"), unique("sqlplain")
    lab.create_topic(framed)
    lab.create_topic(plain)
    with lab.producer() as producer:
        producer.send_many(framed, pd.DataFrame({"user": ["ada", "bob", "ada"], "n": [1, 2, 3]}), value_format="avro")
        producer.send_many(plain, pd.DataFrame({"user": ["ada", "bob"], "tier": ["gold", "free"]}))
    got = lab.sql(f'SELECT user, sum(n) AS total FROM "{framed}" GROUP BY user ORDER BY user')
    assert got.values.tolist() == [["ada", 4], ["bob", 2]]
    joined = lab.sql(f'SELECT f.n, p.tier FROM "{framed}" f JOIN "{plain}" p ON f.user = p.user ORDER BY f.n')
    assert joined.values.tolist() == [[1, "gold"], [2, "free"], [3, "gold"]]
    assert lab.sql(f'SELECT count(*) AS n FROM "{plain}"')["n"].tolist() == [2]  # as ever
