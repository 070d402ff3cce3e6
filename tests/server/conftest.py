"""Fixtures: `streamlab serve` as a real subprocess, for tests that drive it with real clients."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import ServerProcess

_names = itertools.count()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """`streamlab serve --data <tmp>/data` on a free port, ready; kill -9 at teardown."""
    proc = ServerProcess(tmp_path / "data", tmp_path / "server.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a whole test module, for tests that need no restart (startup takes
    seconds, mostly importing pandas). Tests must use their own topics."""
    tmp = tmp_path_factory.mktemp("shared-server")
    proc = ServerProcess(tmp / "data", tmp / "server.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def _topic_factory(server: ServerProcess) -> Callable[..., str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})

    def create(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"topic-{next(_names)}"
        futures = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})], operation_timeout=10)
        futures[name].result(timeout=10)
        return name

    return create


@pytest.fixture
def create_topic(server: ServerProcess) -> Callable[..., str]:
    """Create a topic with a unique name on ``server`` through the admin API; returns it."""
    return _topic_factory(server)


@pytest.fixture
def create_shared_topic(shared_server: ServerProcess) -> Callable[..., str]:
    """Create a topic with a unique name on ``shared_server``; returns the name."""
    return _topic_factory(shared_server)
