"""One object per open broker, made on first use (:class:`PerBroker`).

The registries of consumer-protocol groups and of share groups attach to a broker this
way: held by a weak reference, so a broker that is dropped takes its registry with it,
and made under a lock, so two threads asking at once share one.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from streamlab.broker.core import Broker

T = TypeVar("T")


class PerBroker(Generic[T]):
    """``make(broker)``'s result, once per broker."""

    def __init__(self, make: Callable[[Broker], T]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[Broker, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, broker: Broker) -> T:
        """The broker's object, made now if this is the first call (the broker must be open)."""
        broker.check_open()
        with self._lock:
            found = self._made.get(broker)
            if found is None:
                found = self._made[broker] = self._make(broker)
            return found
