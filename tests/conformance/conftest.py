"""One behaviour suite, run against every backend a notebook can connect to.

``lab`` is parametrized:

- ``embedded``: ``streamlab.connect(tmp_path)``;
- ``kafka-mock``: ``streamlab.connect("kafka://...")`` on librdkafka's 3-broker mock
  cluster;
- ``serve``: ``streamlab.connect("kafka://...")`` on `streamlab serve`, started with
  tests/server/harness.py (the ``server`` fixture's harness).

The cluster and the server are started once per session and shared (a server takes
seconds to start), so every topic and group name is unique.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import streamlab
from streamlab.kafka.mock_cluster import MockCluster

BACKENDS = ["embedded", "kafka-mock", "serve"]
_run = uuid.uuid4().hex[:6]
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{_run}-{next(_names)}"


@pytest.fixture(scope="session")
def mock_cluster() -> Iterator[MockCluster]:
    """librdkafka's mock cluster with 3 brokers, for the whole session."""
    with MockCluster(brokers=3) as cluster:
        cluster.consumer_group_settings(heartbeat_interval_ms=300)  # as serve_bootstrap's
        yield cluster


def _server_harness() -> ModuleType:
    """tests/server/harness.py (not a package: imported by path, once)."""
    if "harness" not in sys.modules:
        spec = importlib.util.spec_from_file_location("harness", Path(__file__).parents[1] / "server" / "harness.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["harness"] = module
        spec.loader.exec_module(module)
    return sys.modules["harness"]


@pytest.fixture(scope="session")
def serve_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlab serve` on a free port for the whole session; its bootstrap address."""
    tmp = tmp_path_factory.mktemp("serve")
    # A short KIP-848 heartbeat interval: consumer-protocol members reconcile at each one.
    server = _server_harness().ServerProcess(
        tmp / "data", tmp / "server.log", args=("--group-consumer-heartbeat-interval-ms", "300")
    )
    server.start()
    try:
        yield server.bootstrap
    finally:
        server.kill()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def lab(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[streamlab.Lab]:
    """The same Lab API on each backend."""
    if backend == "embedded":
        target: str | Path = tmp_path / "lab"
    elif backend == "serve":
        target = "kafka://" + request.getfixturevalue("serve_bootstrap")
    else:
        cluster: MockCluster = request.getfixturevalue("mock_cluster")
        target = "kafka://" + cluster.bootstrap
    opened = streamlab.connect(target)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def make_topic(lab: streamlab.Lab) -> Callable[..., str]:
    """Create a topic with a unique name and return the name."""

    def make(partitions: int = 1, **config: object) -> str:
        name = unique("topic")
        lab.create_topic(name, partitions=partitions, config={k.replace("_", "."): v for k, v in config.items()})
        return name

    return make


@pytest.fixture
def make_group() -> Callable[[], str]:
    """A unique consumer group name."""
    return lambda: unique("group")


@pytest.fixture
def make_name() -> Callable[[str], str]:
    """A unique name starting with the prefix given (for topics and groups made by hand)."""
    return unique
