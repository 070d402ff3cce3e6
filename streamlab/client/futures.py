"""Cheap ``concurrent.futures.Future``s for one-future-per-record producers.

A standard Future builds its own ``threading.Condition`` (an RLock and a Condition object)
and ``set_result`` takes it once per record: at a hundred thousand sends a second that is
most of the producer's cost. :class:`RecordFuture` is a real ``Future`` subclass (so
``concurrent.futures.wait`` / ``as_completed`` and callbacks work) whose futures share
their producer's condition, and :func:`complete` resolves a whole batch under one lock.

Sharing a condition means a waiter can wake for another future; :meth:`RecordFuture.result`
and :meth:`RecordFuture.exception` therefore wait in a loop until their own future is done
or the timeout has passed. This relies on CPython's Future attributes (``_state``,
``_result``, ``_waiters``...), which have been stable since Python 3.8; the tests pin the
behaviour.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, LOGGER, PENDING
from typing import Any, TypeVar

T = TypeVar("T")


class RecordFuture(Future[T]):
    __slots__ = ()

    def __init__(self, condition: threading.Condition) -> None:
        self._condition = condition
        self._state = PENDING
        self._result = None
        self._exception = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []

    def _wait_done(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state not in (FINISHED, CANCELLED, CANCELLED_AND_NOTIFIED):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise FutureTimeoutError()
            self._condition.wait(left)

    def result(self, timeout: float | None = None) -> T:
        with self._condition:
            self._wait_done(timeout)
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                raise CancelledError()
            if self._exception is not None:
                raise self._exception
            return self._result  # type: ignore[return-value]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        with self._condition:
            self._wait_done(timeout)
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                raise CancelledError()
            return self._exception


def complete(condition: threading.Condition, futures: Sequence[Any], results: Sequence[Any]) -> None:
    """Resolve ``futures`` with ``results`` under one acquisition of their shared condition."""
    with_callbacks = []
    with condition:
        for future, result in zip(futures, results, strict=True):
            if future._state != PENDING:  # cancelled by its owner meanwhile
                continue
            future._result = result
            future._state = FINISHED
            for waiter in future._waiters:
                waiter.add_result(future)
            if future._done_callbacks:
                with_callbacks.append(future)
        condition.notify_all()
    for future in with_callbacks:
        for callback in future._done_callbacks:
            try:
                callback(future)
            except Exception:
                LOGGER.exception("exception calling callback for %r", future)
