"""The ``streamlab`` command line, run as a real subprocess against a broker under tmp_path."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import streamlab
from streamlab.cli.main import main
from streamlab.errors import OperationTimeoutError


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def cli(data: Path | str, *args: str, stdin: str | None = None, expect: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STREAMLAB_DATA"}
    result = subprocess.run(
        [sys.executable, "-m", "streamlab.cli.main", "--data", str(data), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == expect, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def setup_topic(data: Path, name: str, partitions: int = 1, values: list[object] | None = None) -> None:
    """Create (and fill) a topic in-process: quicker than more subprocesses, and closed before the CLI runs."""
    with streamlab.connect(data) as lab:
        lab.create_topic(name, partitions=partitions)
        with lab.producer() as producer:
            for value in values or []:
                producer.send(name, value=value, partition=0)


def high_watermarks(data: Path, topic: str) -> list[int]:
    with streamlab.connect(data) as lab:
        return [int(hw) for hw in lab.offsets(topic)["high_watermark"]]


def test_topics_create_list_describe_delete(data: Path) -> None:
    out = cli(data, "topics", "create", "orders", "--partitions", "3", "--config", "retention.ms=60000").stdout
    assert "created topic 'orders' with 3 partition(s)" in out

    listing = cli(data, "topics", "list").stdout.splitlines()
    assert listing[0].split() == ["name", "partitions", "records", "bytes"]
    assert listing[1].split()[:3] == ["orders", "3", "0"]

    described = cli(data, "topics", "describe", "orders").stdout
    assert "retention.ms = 60000" in described
    assert "cleanup.policy = delete" in described
    rows = [line.split() for line in described.splitlines()[-3:]]
    assert rows == [[str(p), "0", "0", "0"] for p in range(3)]

    assert "deleted topic 'orders'" in cli(data, "topics", "delete", "orders").stdout
    with streamlab.connect(data) as lab:
        assert lab.topics().empty


def test_invalid_topic_name_is_a_clear_error(data: Path) -> None:
    result = cli(data, "topics", "create", "bad name!", expect=2)
    assert result.stderr.startswith("streamlab: error: topic name 'bad name!' has illegal characters")
    assert result.stdout == ""


def test_produce_lines_and_json_with_keys_then_consume(data: Path) -> None:
    setup_topic(data, "events", partitions=2)
    lines = cli(data, "produce", "events", "--key-separator", ":", stdin="alice:hello\nbob:world\n\nalice:again\n")
    assert lines.stdout.startswith("produced 3 record(s) to 'events' (partition ")
    docs = '{"user": "alice", "n": 1}\n{"user": "carol", "n": 2}\n'
    cli(data, "produce", "events", "--format", "json", "--key-field", "user", stdin=docs)

    result = cli(data, "consume", "events", "--from-beginning", "--count", "5", "--format", "json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 5
    assert "consumed 5 record(s)" in result.stderr
    assert {r["topic"] for r in records} == {"events"}
    by_key: dict[str, set[int]] = {}
    for r in records:
        by_key.setdefault(r["key"], set()).add(r["partition"])
        assert r["timestamp"].endswith("+00:00") and r["headers"] == {}
    assert all(len(parts) == 1 for parts in by_key.values())  # a key always lands on one partition
    alice = [r["value"] for r in sorted(records, key=lambda r: r["offset"]) if r["key"] == "alice"]
    assert alice == ["hello", "again", {"user": "alice", "n": 1}]


def test_consume_with_group_continues_where_it_stopped(data: Path) -> None:
    setup_topic(data, "seq", values=["m0", "m1", "m2", "m3", {"m": 4}])

    first = cli(data, "consume", "seq", "--group", "g", "--from-beginning", "--count", "3")
    assert first.stdout.splitlines() == ["m0", "m1", "m2"]
    second = cli(data, "consume", "seq", "--group", "g", "--from-beginning", "--timeout", "0.3")
    assert second.stdout.splitlines() == ["m3", '{"m": 4}']


def test_bad_json_line_sends_nothing(data: Path) -> None:
    setup_topic(data, "docs")
    result = cli(data, "produce", "docs", "--format", "json", stdin='{"a": 1}\n{"a": 2}\n{"a": \n', expect=2)
    assert result.stderr.startswith("streamlab: error: line 3")
    assert "invalid JSON" in result.stderr
    assert result.stdout == ""
    assert high_watermarks(data, "docs") == [0]


def test_replay_to_parquet_and_csv(data: Path, tmp_path: Path) -> None:
    setup_topic(data, "sales", values=[{"shop": f"s{i % 3}", "amount": i * 1.5} for i in range(12)])

    parquet = tmp_path / "sales.parquet"
    assert "wrote 12 row(s)" in cli(data, "replay", "sales", "--out", str(parquet)).stdout
    df = pd.read_parquet(parquet)
    assert len(df) == 12
    assert {"partition", "offset", "timestamp", "key", "shop", "amount"} <= set(df.columns)
    assert sorted(df["amount"]) == [i * 1.5 for i in range(12)]
    assert list(df["offset"]) == list(range(12))

    csv = tmp_path / "part0.csv"
    cli(data, "replay", "sales", "--out", str(csv), "--partitions", "0", "--start", "1", "--end", "3")
    part0 = pd.read_csv(csv)
    assert list(part0["offset"]) == [1, 2] and list(part0["shop"]) == ["s1", "s2"]


def test_demo_runs_and_keys_stay_on_their_partition(data: Path) -> None:
    result = cli(data, "demo", "--records", "2000")
    out = result.stdout
    assert "produced 2,000 records" in out
    assert "consumed 2,000 of 2,000 records" in out
    assert "== top 5 users by events" in out and "== purchase funnel" in out
    assert "SELECT event, count(*) AS n FROM clickstream" in out
    assert "OK: " in out and "each on exactly one partition" in out
    assert "== elapsed time per phase" in out


def test_in_process_demo_rerun_and_usage_errors(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``main()`` in-process (cheap): a second demo on the same directory recreates the topic."""
    assert main(["--data", str(data), "demo", "--records", "300"]) == 0
    assert "created 'clickstream'" in capsys.readouterr().out
    assert main(["demo", "--data", str(data), "--records", "300"]) == 0
    assert "recreated 'clickstream'" in capsys.readouterr().out
    assert main(["--data", str(data), "consume"]) == 2  # argparse usage error: no topic
    assert main(["--data", str(data), "topics", "create", "clickstream"]) == 2
    assert "streamlab: error: topic 'clickstream' already exists" in capsys.readouterr().err
    assert main(["--data", str(data), "consume", "nope", "--timeout", "0"]) == 2
    assert "streamlab: error: unknown topic 'nope'" in capsys.readouterr().err


def test_in_process_produce_from_file(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_topic(data, "files", partitions=2)
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "n": 1}\n{"id": "b", "n": 2}\n{"id": "a", "n": 3}\n', encoding="utf-8")
    args = ["--data", str(data), "produce", "files", "--file", str(source), "--format", "json"]
    assert main([*args, "--partition", "5"]) == 2  # no such partition: nothing sent
    assert "no partition 5" in capsys.readouterr().err
    assert main([*args, "--key-field", "missing"]) == 2
    assert "line 1: no field 'missing'" in capsys.readouterr().err
    assert high_watermarks(data, "files") == [0, 0]
    assert main([*args, "--key-field", "id"]) == 0
    assert capsys.readouterr().out.startswith("produced 3 record(s) to 'files'")
    with streamlab.connect(data) as lab:
        df = lab.replay("files")
    assert sorted(df["n"]) == [1, 2, 3]
    assert df.groupby("key")["partition"].nunique().max() == 1


# the analysis and group half (sql, groups, describe-group, lag, reset-offsets) ----------------
def _group_with_progress(data: Path) -> None:
    setup_topic(data, "orders", values=[{"id": i, "amount": i * 1.5} for i in range(10)])
    with streamlab.connect(data) as lab, lab.consumer(group="billing", enable_auto_commit=False) as c:
        tp = streamlab.TopicPartition("orders", 0)
        c.assign([tp])
        c.commit({tp: 4})


def test_sql_prints_the_result_or_writes_it(data: Path, tmp_path: Path) -> None:
    _group_with_progress(data)
    out = cli(data, "sql", "SELECT count(*) AS n, sum(amount) AS total FROM orders").stdout
    assert out.split() == ["n", "total", "10", "67.5"]
    cli(data, "sql", "SELECT id FROM orders ORDER BY id", "--out", str(tmp_path / "ids.parquet"))
    assert pd.read_parquet(tmp_path / "ids.parquet")["id"].tolist() == list(range(10))
    bad = cli(data, "sql", "SELECT nope FROM orders", expect=2)
    assert "nope" in bad.stderr


def test_groups_describe_group_and_lag(data: Path) -> None:
    _group_with_progress(data)
    listing = cli(data, "groups").stdout.splitlines()
    assert listing[0].split()[:3] == ["group", "type", "state"] and listing[1].split()[:2] == ["billing", "classic"]
    assert "no active members" in cli(data, "describe-group", "billing").stdout
    lag = cli(data, "lag", "billing").stdout
    assert lag.splitlines()[1].split()[:5] == ["orders", "0", "4", "10", "6"]
    assert "total lag: 6 record(s)" in lag
    unknown = cli(data, "lag", "biling", expect=2)
    assert "no group 'biling'" in unknown.stderr and "streamlab groups" in unknown.stderr


def test_reset_offsets_previews_unless_executed(data: Path) -> None:
    _group_with_progress(data)
    preview = cli(data, "reset-offsets", "billing", "--to", "earliest").stdout
    assert preview.splitlines()[1].split()[:4] == ["orders", "0", "4", "0"] and "dry run" in preview
    assert "total lag: 6" in cli(data, "lag", "billing").stdout  # nothing changed
    cli(data, "reset-offsets", "billing", "--to", "8", "--topic", "orders", "--execute")
    assert "total lag: 2" in cli(data, "lag", "billing").stdout
    cli(data, "reset-offsets", "billing", "--to", "latest", "--execute")
    assert "total lag: 0" in cli(data, "lag", "billing").stdout


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_produce_a_table_file_with_key_and_timestamp_columns(data: Path, tmp_path: Path, fmt: str) -> None:
    setup_topic(data, "events", partitions=3)
    start = (int(time.time()) - 60) * 1000  # recent: the default retention keeps a week
    df = pd.DataFrame({
        "user": ["u1", "u2", "u1", "u3"], "page": ["home", "cart", "buy", "home"], "amount": [0.0, 2.5, 9.75, 0.0],
        "ts": [start + i * 1000 for i in range(4)],  # epoch milliseconds, as Kafka counts
    })  # fmt: skip
    path = tmp_path / f"events.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path, index=False)
    out = cli(data, "produce", "events", "--format", fmt, "--file", str(path), "--key-field", "user",
              "--timestamp-field", "ts").stdout  # fmt: skip
    assert "produced 4 record(s) to 'events'" in out
    with streamlab.connect(data) as lab:
        got = lab.replay("events").sort_values("timestamp")
        assert got["key"].tolist() == ["u1", "u2", "u1", "u3"]
        assert got["page"].tolist() == ["home", "cart", "buy", "home"]
        assert got["timestamp"].iloc[0] == pd.Timestamp(start, unit="ms", tz="UTC")
        assert got.groupby("key")["partition"].nunique().max() == 1  # one key, one partition
    missing = cli(data, "produce", "events", "--format", fmt, "--file", str(path), "--key-field", "usr", expect=2)
    assert "--key-field 'usr' is not a column" in missing.stderr


def test_read_only_commands_never_create_a_data_directory(tmp_path: Path) -> None:
    typo = tmp_path / "lab-dta"
    for args in (["topics", "list"], ["groups"], ["sql", "SELECT 1"], ["consume", "t"], ["lag", "g"]):
        result = cli(typo, *args, expect=2)
        assert f"no data directory at {typo}" in result.stderr
    assert not typo.exists()


def test_errors_name_cli_commands(data: Path) -> None:
    setup_topic(data, "orders")
    result = cli(data, "consume", "ordrs", expect=2)
    assert "unknown topic 'ordrs'" in result.stderr and "streamlab topics create ordrs" in result.stderr
    assert "create_topic(" not in result.stderr


def test_a_kafka_address_nobody_answers_is_named_within_seconds(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a free port, closed again: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(OperationTimeoutError, match=rf"no Kafka broker answered at kafka://127\.0\.0\.1:{port}"):
        streamlab.connect(f"kafka://127.0.0.1:{port}")
    assert time.monotonic() - started < 15
    failed = cli(f"kafka://127.0.0.1:{port}", "topics", "list", expect=2)
    assert f"no Kafka broker answered at kafka://127.0.0.1:{port}" in failed.stderr
    assert "is running" in failed.stderr


def test_the_cli_drives_a_served_directory_through_kafka(data: Path, tmp_path: Path) -> None:
    setup_topic(data, "over-the-wire", values=[1, 2, 3])
    with streamlab.connect(data) as lab:
        address = lab.serve()
        listed = cli(f"kafka://{address}", "topics", "list")
        assert "over-the-wire" in listed.stdout


def test_kafka_without_confluent_kafka_is_one_line_naming_the_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "streamlab.kafka.backend", raising=False)
    assert main(["--data", "kafka://127.0.0.1:9", "topics", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'streamlab[kafka]'" in err
