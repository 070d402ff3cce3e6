"""Cheap ``concurrent.futures.Future``s for one-future-per-record producers.

A standard Future builds its own ``threading.Condition`` and ``set_result`` takes it once
per record: at a hundred thousand sends a second that is most of the producer's cost.
Here every record queued for one partition in one round shares a :class:`BatchOutcome`;
a :class:`RecordFuture` is just (outcome, index). When the batch is stored the sender
resolves the outcome once, under the producer's one condition, and each future's state
and :class:`RecordMetadata` are derived from it when asked. Nothing is done per record
unless a future is watched (``concurrent.futures.wait`` / ``as_completed`` waiters, done
callbacks): those futures register with their outcome and are notified one by one.

:class:`RecordFuture` is a real ``Future`` subclass, so ``wait`` / ``as_completed`` /
callbacks / ``cancel`` work: CPython's Future methods read and write ``_state``,
``_result``, ``_exception``, ``_waiters`` and ``_done_callbacks`` (stable since Python
3.8), which are properties here. A future of its own (cancelled, or set by hand) keeps
its overrides in its instance dict; the tests pin the behaviour.
"""

from __future__ import annotations

import threading
import time
from array import array
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, LOGGER, PENDING
from typing import Any

from streamlab.model.types import RecordMetadata

_DONE = (FINISHED, CANCELLED, CANCELLED_AND_NOTIFIED)


class BatchOutcome:
    """The shared fate of the records queued for one partition in one round."""

    __slots__ = ("base", "condition", "exception", "partition", "state", "timestamps", "topic", "watched")

    def __init__(self, topic: str, partition: int, condition: threading.Condition) -> None:
        self.topic, self.partition, self.condition = topic, partition, condition
        self.timestamps = array("q")  # one per record, in queue order (filled by the producer)
        self.state = PENDING
        self.base = -1
        self.exception: BaseException | None = None
        self.watched: list[RecordFuture] = []  # futures with waiters or callbacks

    def resolve(self, base: int | None, exception: BaseException | None = None) -> None:
        """Mark every record stored from offset ``base`` on (or failed with ``exception``)."""
        with self.condition:
            if exception is None:
                self.base = base if base is not None else -1
            else:
                self.exception = exception
            self.state = FINISHED
            watched, self.watched = self.watched, []
            for future in watched:
                if future.__dict__.get("own_state", PENDING) != PENDING:
                    continue  # cancelled by its owner meanwhile
                for waiter in future._waiters:
                    if exception is None:
                        waiter.add_result(future)
                    else:
                        waiter.add_exception(future)
            self.condition.notify_all()
        for future in watched:
            if future.__dict__.get("own_state", PENDING) != PENDING:
                continue
            for callback in future._done_callbacks:
                try:
                    callback(future)
                except Exception:
                    LOGGER.exception("exception calling callback for %r", future)


class RecordFuture(Future[RecordMetadata]):
    """Record ``index`` of ``outcome``; resolves when the outcome does."""

    __slots__ = ("_index", "_outcome")

    def __init__(self, outcome: BatchOutcome, index: int) -> None:
        self._outcome = outcome
        self._index = index

    # The attributes CPython's Future methods use, derived from the outcome -----------------
    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        return self._outcome.condition

    @property
    def _state(self) -> str:
        own: str | None = self.__dict__.get("own_state")
        return self._outcome.state if own is None else own

    @_state.setter
    def _state(self, value: str) -> None:
        self.__dict__["own_state"] = value

    @property
    def _result(self) -> Any:
        if "own_result" in self.__dict__:
            return self.__dict__["own_result"]
        out = self._outcome
        if out.state != FINISHED or out.exception is not None:
            return None
        return RecordMetadata(out.topic, out.partition, out.base + self._index, out.timestamps[self._index])

    @_result.setter
    def _result(self, value: Any) -> None:
        self.__dict__["own_result"] = value

    @property
    def _exception(self) -> BaseException | None:
        if "own_exception" in self.__dict__:
            return self.__dict__["own_exception"]
        return self._outcome.exception

    @_exception.setter
    def _exception(self, value: BaseException | None) -> None:
        self.__dict__["own_exception"] = value

    def _watched_list(self, name: str) -> list[Any]:
        # Called with the condition held (Future's methods and concurrent.futures.wait do).
        lists = self.__dict__.get("own_lists")
        if lists is None:
            lists = self.__dict__["own_lists"] = {"waiters": [], "callbacks": []}
            if self._outcome.state == PENDING:
                self._outcome.watched.append(self)
        return lists[name]

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        return self._watched_list("waiters")

    @property
    def _done_callbacks(self) -> list[Any]:
        return self._watched_list("callbacks")

    # Waiting: the condition is shared, so a waiter may wake for another future -------------
    def _wait_done(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state not in _DONE:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise FutureTimeoutError()
            self._condition.wait(left)

    def result(self, timeout: float | None = None) -> RecordMetadata:
        with self._condition:
            self._wait_done(timeout)
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                raise CancelledError()
            exception = self._exception
            if exception is not None:
                raise exception
            return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        with self._condition:
            self._wait_done(timeout)
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                raise CancelledError()
            return self._exception
