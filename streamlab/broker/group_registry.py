"""What the broker's registries of consumer-protocol groups and of share groups share
(:class:`GroupRegistry`): their groups by id, behind one lock, created on first use.

The registry's lock guards only the table; each group has its own lock for its state, so
one busy group does not hold up lookups of the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from streamlab.broker.core import Broker

G = TypeVar("G")


class GroupRegistry(Generic[G]):
    """The groups of one kind of one broker, by group id."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._lock = threading.Lock()
        self._groups: dict[str, G] = {}

    def get(self, group_id: str) -> G | None:
        with self._lock:
            return self._groups.get(group_id)

    def groups(self) -> dict[str, G]:
        with self._lock:
            return dict(self._groups)

    def _get_or_make(self, group_id: str, make: Callable[[], G]) -> tuple[G, bool]:
        """The group ``group_id``, made with ``make`` (under the lock, so once) if there is
        none; and whether it was made now."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is not None:
                return group, False
            group = self._groups[group_id] = make()
            return group, True
