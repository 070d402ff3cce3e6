"""The one clock a broker keeps time by, injectable from ``connect()`` down.

Group sessions, rebalance and poll timeouts, share-group lock expiry and member
sessions all read the broker's :class:`Clock`. The default is the system's;
:class:`ManualClock` moves only when told, so a test (or a tutorial that teaches lock
expiry) steps past a 30-second lock at once instead of sleeping through it.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: what timeouts are measured on."""

    def time_ms(self) -> int:
        """Wall-clock time in epoch milliseconds: what lock expiry and history are stamped with."""


class SystemClock:
    """The system's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time_ms(self) -> int:
        return int(time.time() * 1000)


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that stands still until :meth:`advance` moves it (thread-safe). It starts
    at ``start_ms`` (default: now) on the wall clock and at 0 on the monotonic one."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._lock = threading.Lock()
        self._elapsed_ms = 0
        self._start_ms = int(time.time() * 1000) if start_ms is None else start_ms

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed_ms / 1000

    def time_ms(self) -> int:
        with self._lock:
            return self._start_ms + self._elapsed_ms

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        if seconds < 0:
            raise ValueError(f"a clock never goes back: advance({seconds})")
        with self._lock:
            self._elapsed_ms += round(seconds * 1000)
