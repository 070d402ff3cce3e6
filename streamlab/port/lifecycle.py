"""The lifecycle every consumer shares, whichever backend and group kind: closed means
closed (one error naming what to do), a context manager that closes, and no
``for record in consumer`` loop (a notebook cell must end)."""

from __future__ import annotations

from typing import Any, Self

from streamlab.errors import ClosedError


class ClientLifecycle:
    _closed: bool
    _maker = "consumer"  # the Lab method that makes one, named when it is used after close()

    def _check_backend_open(self) -> None:
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            kind = self._maker.replace("_", " ")
            raise ClosedError(f"this {kind} is closed; create a new one with lab.{self._maker}()")
        self._check_backend_open()

    def close(self) -> None:
        raise NotImplementedError

    def _mark_closed(self) -> bool:
        """Mark this client closed for good; False when it already was (close() twice is fine)."""
        if self._closed:
            return False
        self._closed = True
        return True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:
        raise TypeError("iterate with poll(timeout=..., max_records=...) so a notebook cell always ends")
