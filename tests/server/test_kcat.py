"""kcat (librdkafka's command-line client, a Debian package) against `streamlab serve`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from harness import ServerProcess

KCAT = "/usr/bin/kcat"


def kcat(server: ServerProcess, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [KCAT, "-b", server.bootstrap, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_metadata_lists_broker_and_topics(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(partitions=3)
    out = kcat(shared_server, "-L")
    assert f"broker 0 at {shared_server.bootstrap} (controller)" in out
    assert f'topic "{topic}" with 3 partitions:' in out
    for p in range(3):
        assert f"partition {p}, leader 0, replicas: 0, isrs: 0" in out


def test_produce_keys_from_stdin_then_consume_from_beginning_to_end(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(partitions=2)
    lines = [f"user-{i % 5}:event {i}" for i in range(200)]
    kcat(shared_server, "-P", "-t", topic, "-K:", stdin="\n".join(lines) + "\n")
    out = kcat(shared_server, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p %o %k=%s\n")
    rows = [line.split(" ", 2) for line in out.splitlines()]
    assert sorted(kv for _, _, kv in rows) == sorted(line.replace(":", "=", 1) for line in lines)
    by_key: dict[str, set[str]] = {}
    for partition, offset, kv in rows:
        by_key.setdefault(kv.split("=")[0], set()).add(partition)
        assert int(offset) >= 0
    assert all(len(parts) == 1 for parts in by_key.values())  # a key always goes to one partition
    for partition in ("0", "1"):
        events = [int(kv.split(" ")[1]) for p, _, kv in rows if p == partition]
        assert events == sorted(events)  # order is kept within a partition
