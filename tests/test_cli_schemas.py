"""``streamlab produce --value-format avro --schema FILE`` and ``consume``/``replay`` of
Confluent-framed values, through the real command (a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_cli import cli, setup_topic

import streamlab
from streamlab.cli.main import main

pytestmark = pytest.mark.integration

CLICK = {"type": "record", "name": "Click", "namespace": "shop",
         "fields": [{"name": "user", "type": "string"}, {"name": "n", "type": "long"},
                    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}  # fmt: skip


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.mark.slow  # two subprocesses
def test_produce_json_lines_as_avro_with_an_avsc_then_consume_and_replay_decode(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_topic(data, "clicks")
    avsc = tmp_path / "click.avsc"
    avsc.write_text(json.dumps(CLICK))
    lines = "".join(
        json.dumps({"user": u, "n": n, "at": 1_700_000_000_000 + n}) + "\n" for u, n in [("ada", 1), ("bob", 2)]
    )
    out = cli(data, "produce", "clicks", "--format", "json", "--key-field", "user", "--value-format", "avro",
              "--schema", str(avsc), stdin=lines).stdout  # fmt: skip
    assert "produced 2 record(s) to 'clicks'" in out
    with streamlab.connect(data) as lab:
        assert lab.schemas.latest("clicks-value").version == 1
        assert lab.replay("clicks", raw=True)["value"][0][0] == 0  # magic byte: Confluent's wire format
    values = cli(data, "consume", "clicks", "--from-beginning", "--count", "2").stdout.splitlines()
    assert [json.loads(v) for v in values] == [
        {"user": "ada", "n": 1, "at": "2023-11-14T22:13:20.001000+00:00"},
        {"user": "bob", "n": 2, "at": "2023-11-14T22:13:20.002000+00:00"},
    ]
    base = ["--data", str(data)]  # the rest in-process: each subprocess costs seconds of imports
    assert main([*base, "consume", "clicks", "--from-beginning", "--count", "1", "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["key"], record["value"]["user"]) == ("ada", "ada")
    assert main([*base, "replay", "clicks", "--out", str(tmp_path / "clicks.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "clicks.parquet")
    assert table["user"].tolist() == ["ada", "bob"] and table["n"].tolist() == [1, 2]
    assert str(table["at"].dtype).startswith("datetime64") and "value" not in table.columns


def test_produce_a_csv_as_avro_with_a_derived_schema(data: Path, tmp_path: Path) -> None:
    setup_topic(data, "events")
    path = tmp_path / "events.csv"
    pd.DataFrame({"user": ["u1", "u2"], "amount": [2.5, 9.75], "count": [1, 2]}).to_csv(path, index=False)
    assert main(["--data", str(data), "produce", "events", "--format", "csv", "--file", str(path),
                 "--key-field", "user", "--value-format", "avro"]) == 0  # fmt: skip
    with streamlab.connect(data) as lab:
        fields = json.loads(lab.schemas.latest("events-value").schema.schema)["fields"]
        assert [(f["name"], f["type"]) for f in fields] == [("amount", "double"), ("count", "long")]
        got = lab.replay("events")
        assert got["amount"].tolist() == [2.5, 9.75] and got["count"].tolist() == [1, 2]


def test_registry_format_errors(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_topic(data, "t")
    lines = tmp_path / "in.json"
    lines.write_text('{"a": 1}\n')
    base = ["--data", str(data), "produce", "t", "--file", str(lines), "--format", "json"]
    assert main([*base, "--schema", str(tmp_path / "x.avsc")]) == 2
    assert "give --value-format too" in capsys.readouterr().err
    assert main([*base, "--value-format", "protobuf"]) == 2
    assert "has no schema yet" in capsys.readouterr().err
    assert main([*base, "--value-format", "avro"]) == 2
    assert "has no schema yet" in capsys.readouterr().err
    with streamlab.connect(data) as lab:
        assert lab.offsets("t")["high_watermark"].sum() == 0


def test_produce_as_protobuf_with_a_proto_file_and_with_a_derived_schema(data: Path, tmp_path: Path) -> None:
    setup_topic(data, "clicks")
    setup_topic(data, "events")
    proto = tmp_path / "click.proto"
    proto.write_text('syntax = "proto3";\npackage shop;\nmessage Click { string user = 1; int64 n = 2; }\n')
    lines = tmp_path / "in.json"
    lines.write_text('{"user": "ada", "n": 1}\n{"user": "bob", "n": 2}\n')
    assert main(["--data", str(data), "produce", "clicks", "--file", str(lines), "--format", "json",
                 "--value-format", "protobuf", "--schema", str(proto)]) == 0  # fmt: skip
    csv = tmp_path / "events.csv"
    pd.DataFrame({"user": ["u1", "u2"], "amount": [2.5, 9.75]}).to_csv(csv, index=False)
    assert main(["--data", str(data), "produce", "events", "--format", "csv", "--file", str(csv),
                 "--key-field", "user", "--value-format", "protobuf"]) == 0  # fmt: skip
    with streamlab.connect(data) as lab:
        assert lab.schemas.latest("clicks-value").schema.schema_type == "PROTOBUF"
        clicks = lab.replay("clicks")
        assert clicks["user"].tolist() == ["ada", "bob"] and clicks["n"].tolist() == [1, 2]
        assert "double amount = 1;" in lab.schemas.latest("events-value").schema.schema
        assert lab.replay("events")["amount"].tolist() == [2.5, 9.75]
