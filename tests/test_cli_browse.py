"""``streamlab browse`` against a data directory under tmp_path: the real command in a subprocess,
and the same ``main()`` in this process where only its output matters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import streamlab
from streamlab.cli.main import main


def cli(data: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STREAMLAB_DATA"}
    result = subprocess.run(
        [sys.executable, "-m", "streamlab.cli.main", "--data", str(data), *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == expect, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def run(data: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The same command in this process (no Python start-up): its stdout."""
    assert main(["--data", str(data), *args]) == 0
    return capsys.readouterr().out


@pytest.mark.slow  # two Python start-ups and a data directory opened seven times
def test_browse_filters_pages_and_reports_bad_sql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with streamlab.connect(data) as lab:
        lab.create_topic("orders", partitions=2)
        lab.create_topic("notes")
        with lab.producer() as p:
            for i in range(10):
                p.send("orders", value={"amount": i * 10, "page": "home" if i % 2 else "cart"}, key=f"user-{i}",
                       partition=i % 2)  # fmt: skip
            p.send("notes", value="a plain TEXT value", key="k", headers={"trace": "t-1"})
            p.send("notes", value=b"bytes", key="k2")

    lines = cli(data, "browse", "orders", "--where", "amount > 30 AND page = 'home'").stdout.splitlines()
    assert lines[0].split() == ["partition", "offset", "timestamp", "key", "amount", "page"]
    assert [line.split()[5] for line in lines[1:-1]] == ["50", "70", "90"]  # all on partition 1
    assert lines[-1] == "3 record(s)"

    first = run(data, capsys, "browse", "orders", "--where", "amount >= 20", "--limit", "3").splitlines()
    assert first[-1] == "3 record(s); next page: --after 0:3"
    second = run(data, capsys, "browse", "orders", "--where", "amount >= 20", "--limit", "3", "--after", "0:3")
    assert [line.split()[:2] for line in second.splitlines()[1:-1]] == [["0", "4"], ["1", "1"], ["1", "2"]]

    found = run(data, capsys, "browse", "notes", "--search", "text").splitlines()
    assert found[0].split() == ["partition", "offset", "timestamp", "key", "value", "headers"]
    assert "a plain TEXT value" in found[1] and '{"trace": "t-1"}' in found[1] and found[-1] == "1 record(s)"
    latest = run(data, capsys, "browse", "orders", "--start", "-1", "--partitions", "1").splitlines()
    assert [line.split()[:2] for line in latest[1:-1]] == [["1", "4"]]
    assert run(data, capsys, "browse", "orders", "--search", "nowhere").strip() == "no matching records"

    bad = cli(data, "browse", "orders", "--where", "amount >", expect=2)
    assert bad.stderr.startswith("streamlab: error: Parser Error: syntax error")


def test_browse_transactions_shows_statuses_and_markers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with streamlab.connect(data) as lab:
        lab.create_topic("t")
        with lab.producer(transactional_id="cli") as txn:
            txn.begin_transaction()
            txn.send("t", "kept")
            txn.commit_transaction(10)
            txn.begin_transaction()
            txn.send("t", "dropped")
            txn.abort_transaction(10)
    lines = run(data, capsys, "browse", "t", "--transactions").splitlines()
    assert lines[0].split() == ["partition", "offset", "timestamp", "key", "value", "transaction", "marker",
                                "producer_id", "producer_epoch"]  # fmt: skip
    # partition, offset, date, time, key, value, transaction, marker, ...
    assert [tuple(line.split()[5:8]) for line in lines[1:-1]] == [
        ("kept", "committed", "<NA>"), ("<NA>", "marker", "COMMIT"), ("dropped", "aborted", "<NA>"),
        ("<NA>", "marker", "ABORT"),
    ]  # fmt: skip
    assert "dropped" not in run(data, capsys, "browse", "t")
