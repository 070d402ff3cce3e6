"""Helpers shared by test files: ``from helpers import wait_until`` (tests/ is on sys.path,
as tests/conftest.py's folder; tests/server/harness.py is imported the same way)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    step: Callable[[], object] | None = None,
    interval: float = 0.05,
) -> float:
    """Wait until ``condition()`` holds and return the seconds that took; fail the test
    after ``timeout`` seconds, naming ``what`` was awaited. Between checks it calls
    ``step()`` (what moves things on, such as a consumer's poll) or sleeps ``interval``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        if step is None:
            time.sleep(interval)
        else:
            step()
    return time.monotonic() - start
