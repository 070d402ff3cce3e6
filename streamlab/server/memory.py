"""The server's memory budget (``queued.max.request.bytes``), shared by every connection.

What it counts is what clients make the server hold: request frames from the moment
their size is read until they are answered, Fetch responses while they are read and
encoded, and every response until the kernel has taken its last byte. Three ways in:

* :meth:`MemoryBudget.acquire` waits until a request frame fits. A connection waiting here
  reads nothing more, so its client's socket fills and its sends wait: backpressure, as
  Kafka mutes a channel when its memory pool is empty. Waiters are served first-fit in
  arrival order, so small requests are not held up behind one large one; a frame larger
  than the whole budget is admitted when nothing else is held.
* :meth:`MemoryBudget.lease` never waits: a Fetch takes what is left (keeping a quarter
  of the budget for requests, so readers are not starved by responses), but at least
  :data:`FETCH_FLOOR` (or what it asked for, if less), and answers with that many bytes.
  A fetch never blocks; under pressure its responses are just smaller.
* :meth:`MemoryBudget.take` counts memory that already exists (an encoded response).

:meth:`MemoryBudget.release` returns bytes and admits waiting frames.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FETCH_FLOOR", "MemoryBudget", "return_freed_memory"]

FETCH_FLOOR = 64 * 1024  # the least a Fetch is granted: fits a socket buffer, so progress never stops
_REQUEST_SHARE = 4  # a lease leaves 1/4 of the budget to reading requests


@dataclass(eq=False)
class _Waiter:
    size: int
    future: asyncio.Future[None]
    since: float


@dataclass(eq=False)
class MemoryBudget:
    """Bytes held for clients, against ``capacity``. Used on the event loop only."""

    capacity: int
    used: int = 0
    _waiters: list[_Waiter] = field(default_factory=list)

    @property
    def available(self) -> int:
        return max(0, self.capacity - self.used)

    def _fits(self, size: int) -> bool:
        return self.used + size <= self.capacity or self.used == 0

    async def acquire(self, size: int) -> None:
        """Wait until ``size`` bytes fit, then hold them."""
        if self._fits(size):
            self.used += size
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(size, loop.create_future(), loop.time())
        self._waiters.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(size)  # granted just as the wait was cancelled: give it back
            else:
                self._waiters.remove(waiter)
            raise

    def lease(self, wanted: int) -> int:
        """Hold and return up to ``wanted`` bytes for a response, without waiting."""
        spare = self.capacity - self.capacity // _REQUEST_SHARE - self.used
        granted = max(0, min(wanted, max(spare, FETCH_FLOOR)))
        self.used += granted
        return granted

    def take(self, size: int) -> None:
        """Count ``size`` bytes that are already held (may go past the capacity)."""
        self.used += size

    def release(self, size: int) -> None:
        self.used -= size
        self._admit()

    def waited(self, now: float) -> float:
        """How long the oldest waiting frame has waited (0 when none waits)."""
        return now - self._waiters[0].since if self._waiters else 0.0

    def _admit(self) -> None:
        for waiter in list(self._waiters):
            if waiter.future.done():  # cancelled: its task removes it
                continue
            if self._fits(waiter.size):
                self._waiters.remove(waiter)
                self.used += waiter.size
                waiter.future.set_result(None)


@functools.cache
def _malloc_trim() -> Callable[[int], object] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], object] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc: its allocator returns memory its own way
        return None
    return trim


def return_freed_memory() -> None:
    """Hand the heap's free memory back to the operating system, now.

    glibc keeps freed blocks for reuse: after a connection that held a large frame closes,
    the process would go on holding that memory (its pages are still counted in its RSS)
    until the heap happens to shrink. ``malloc_trim`` releases every free page at once.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
