"""JSON written by other Kafka clients (kcat, kafka-python, confluent-kafka) into `streamlab
serve`, read back as field columns: over ``kafka://`` while it runs, and from its data
directory with an embedded ``connect(dir)`` afterwards (active segment, then sealed)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import confluent_kafka as ck
import pandas as pd
import pytest
from harness import ServerProcess
from kafka import KafkaProducer

import streamlab

KCAT = "/usr/bin/kcat"


def _write_from_three_clients(server: ServerProcess, topic: str) -> None:
    """Offsets 0-1 from kcat (one line each), 2-3 from kafka-python, 4 from confluent-kafka."""
    lines = '{"client":"kcat","n":1,"price":1.25}\nnot json from kcat\n'
    done = subprocess.run([KCAT, "-b", server.bootstrap, "-P", "-t", topic, "-p", "0"], input=lines,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    producer = KafkaProducer(bootstrap_servers=server.bootstrap)
    producer.send(topic, b'{"client": "kafka-python", "n": 2, "price": 2.5}', partition=0).get(timeout=30)
    producer.send(topic, b"[1, 2, 3]", partition=0).get(timeout=30)
    producer.close(timeout=10)
    confluent = ck.Producer({"bootstrap.servers": server.bootstrap})
    confluent.produce(topic, value='{\n  "client": "confluent",\n  "n": 3\n}', partition=0)  # text, pretty-printed
    assert confluent.flush(10) == 0


def _check(out: pd.DataFrame) -> None:
    assert out["client"].fillna("-").tolist() == ["kcat", "-", "kafka-python", "-", "confluent"]
    assert out["n"].dtype == "Int64" and out["n"].tolist() == [1, pd.NA, 2, pd.NA, 3]
    assert out["price"].fillna(0).tolist() == [1.25, 0, 2.5, 0, 0]
    assert out["value"].tolist() == [None, b"not json from kcat", None, b"[1, 2, 3]", None]
    assert out["value_error"].fillna("-").tolist() == ["-", "not JSON", "-", "not a JSON object", "-"]


@pytest.mark.slow  # a server start, and a reopen of its directory
def test_json_from_kcat_kafka_python_and_confluent_becomes_columns(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    topic = create_topic(partitions=1)
    _write_from_three_clients(server, topic)
    with streamlab.connect(f"kafka://{server.bootstrap}") as lab:
        _check(lab.replay(topic))
        assert lab.sql(f'SELECT sum(n) AS n FROM "{topic}"')["n"].iloc[0] == 6
    values = [
        {"client": "kcat", "n": 1, "price": 1.25},
        b"not json from kcat",
        {"client": "kafka-python", "n": 2, "price": 2.5},
        b"[1, 2, 3]",
        {"client": "confluent", "n": 3},
    ]  # poll over kafka:// is in tests/conformance/test_conformance_foreign_json.py
    server.stop()
    with streamlab.connect(server.data_dir) as lab:  # what serve stored, read in a notebook
        _check(lab.replay(topic))
        with lab.consumer([topic], auto_offset_reset="earliest") as c:
            assert [r.value for r in c.poll(timeout=10, max_records=10)] == values
        lab.roll(topic)
        _check(lab.replay(topic))
        assert lab.sql(f'SELECT count(*) AS n FROM "{topic}" WHERE value_error IS NULL')["n"].iloc[0] == 3
