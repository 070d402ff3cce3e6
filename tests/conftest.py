from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import streamlab

_names = itertools.count()

# Files whose tests drive real processes, servers, Kafka clients, kill -9 or a browser:
# marked ``integration`` so the inner loop (`pytest -m "not integration" -n 2`) stays under
# a minute. Such a test in another file, or a fuzz campaign, is marked ``integration`` itself.
# CI runs everything.
_INTEGRATION = ("server/", "browser/", "conformance/", "test_cli.py", "test_faults.py", "test_durability.py",
                "test_jobs.py", "test_job_rerun.py")  # fmt: skip
INNER_LOOP = "not integration"


def _integration_path(path: Path) -> bool:
    where = path.as_posix() + ("/" if path.is_dir() else "")
    return any(f"/tests/{part}" in where for part in _INTEGRATION)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # The inner loop does not import the integration files only to deselect every test in
    # them: on two cores each xdist worker spent seconds importing them.
    if " ".join(config.option.markexpr.split()) == INNER_LOOP and _integration_path(collection_path):
        return True
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    # An xdist controller only hands tests out: importing hypothesis (and streamlab, in the
    # fixtures) there took 2 s before the workers even started. Loaded before collection, as
    # the tests' own settings take what they do not set from the profile loaded then.
    if session.config.pluginmanager.has_plugin("dsession"):
        return
    from hypothesis import HealthCheck, settings

    # Property tests check what is generated, not how fast: on a loaded 2-core CI machine data
    # generation is slow, never wrong, so no example fails on time (tests may still set more).
    settings.register_profile("streamlab", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("streamlab")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _integration_path(item.path) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[streamlab.Lab]:
    import streamlab  # here, not at the top: an xdist controller never opens a lab

    with streamlab.connect(tmp_path / "lab") as opened:
        yield opened


def _lives_with_process(thread: threading.Thread) -> bool:
    """Threads started once per process, whichever test happens to start them first: the
    broker's fsync pool (its workers end when the lab closes) and tqdm's monitor."""
    return thread.name.startswith("streamlab-fsync") or thread.name == "tqdm_monitor"


@pytest.fixture
def threads_end() -> Iterator[None]:
    """Every thread a test's widgets started (tickers, the history sampler) has ended by
    the end of the test."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [t.name for t in set(threading.enumerate()) - before if t.is_alive() and not _lives_with_process(t)]
        if not left:
            return
        time.sleep(0.05)
    raise AssertionError(f"threads still running: {left}")


@pytest.fixture
def make_topic(lab: streamlab.Lab) -> Callable[..., str]:
    """Create a topic with a unique name and return the name."""

    def make(partitions: int = 1, **config: object) -> str:
        name = f"t{next(_names)}"
        lab.create_topic(name, partitions=partitions, config={k.replace("_", "."): v for k, v in config.items()})
        return name

    return make


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of our own, so the test can fill it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the filler file to delete to free it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        size = 1 << 16
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def fill_disk() -> Callable[[Path], Path]:
    """``fill_disk(disk)`` fills a small disk to the last byte and returns the filler file,
    whose deletion frees the space again."""
    return _fill
