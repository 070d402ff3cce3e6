"""One connection's Produce requests, stored in order by one worker thread at a time.

A producer sends many small Produce requests (librdkafka one per ``linger.ms`` and
partition batch), each needing an append and, with ``acks=all``, an fsync. Handing each
to a thread of its own costs two thread wake-ups per request, and when the process is busy
(``lab.serve()`` shares its interpreter and GIL with a notebook's own work) each wake-up can
wait milliseconds for the CPU and the GIL: a connection then falls behind its producer and
its requests queue up by the second. Here a request is queued on its connection's lane; one
worker takes every request waiting, appends them in order, then makes them durable (the
first fsync of a file covers every append before it, so the others find it done, see
``storage/append_file.py``) and hands all the answers back to the event loop at once. The busier
the connection, the more requests share one turn. When requests are already waiting at the
end of a turn's appends, its fsyncs run in another thread while the worker appends the next
turn: the disk's wait and the next appends overlap, and no answer goes out before its own
fsync.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["Lane"]

# Where a turn's ``then`` runs when the next turn is already waiting (see Lane._turns).
_THEN_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="streamlab-produce-sync")


class Lane:
    """Runs jobs ``first`` then ``then(first's result)``, in submission order, in turns:
    each turn runs the ``first`` of every waiting job, then their ``then``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[tuple[Callable[[], Any], Callable[[Any], Any], asyncio.Future[Any]]] = []
        self._running = False

    def run(self, first: Callable[[], Any], then: Callable[[Any], Any]) -> asyncio.Future[Any]:
        """A future of ``then(first())``, resolved on the calling event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._waiting.append((first, then, future))
            start, self._running = not self._running, True
        if start:
            loop.run_in_executor(None, self._turns, loop)
        return future

    def _turns(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            with self._lock:
                jobs, self._waiting = self._waiting, []
                if not jobs:
                    self._running = False
                    return
            outcomes: list[tuple[bool, Any]] = []  # (failed, result or exception)
            for first, _then, _future in jobs:
                try:
                    outcomes.append((False, first()))
                except BaseException as exc:  # handed to the request's handler, which reports it
                    outcomes.append((True, exc))
            with self._lock:
                more = bool(self._waiting)
            if more:
                # Requests came in meanwhile: this turn's ``then`` (with acks=all, fsyncs
                # that mostly wait for the disk) runs beside their appends. Each answer
                # still waits for its own ``then``, and the server writes them in order.
                _THEN_POOL.submit(_finish, loop, jobs, outcomes)
            elif not _finish(loop, jobs, outcomes):
                return


def _finish(
    loop: asyncio.AbstractEventLoop,
    jobs: list[tuple[Callable[[], Any], Callable[[Any], Any], asyncio.Future[Any]]],
    outcomes: list[tuple[bool, Any]],
) -> bool:
    """Run the jobs' ``then`` and hand the answers to ``loop``; False if it is closed."""
    for i, (_first, then, _future) in enumerate(jobs):
        failed, value = outcomes[i]
        if not failed:
            try:
                outcomes[i] = (False, then(value))
            except BaseException as exc:
                outcomes[i] = (True, exc)
    try:
        loop.call_soon_threadsafe(_deliver, [future for _, _, future in jobs], outcomes)
    except RuntimeError:  # the loop is closed: the server is gone, nobody waits
        return False
    return True


def _deliver(futures: list[asyncio.Future[Any]], outcomes: list[tuple[bool, Any]]) -> None:
    for future, (failed, value) in zip(futures, outcomes, strict=True):
        if future.done():  # cancelled: its connection closed
            continue
        if failed:
            future.set_exception(value)
        else:
            future.set_result(value)
