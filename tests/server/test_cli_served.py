"""The `streamlab` command on a directory that `streamlab serve` holds: read-only commands
go through the server's kafka:// address instead of failing on the lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import ServerProcess

import streamlab


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
