"""The lifecycle every consumer shares, whichever backend and group kind: a context
manager that closes, and no ``for record in consumer`` loop (a notebook cell must end)."""

from __future__ import annotations

from typing import Any, Self


class ClientLifecycle:
    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:
        raise TypeError("iterate with poll(timeout=..., max_records=...) so a notebook cell always ends")
