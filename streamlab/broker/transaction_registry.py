"""The broker's one transaction coordinator: made on first use by the embedded API
(:func:`coordinator`) or by a server (:func:`shared_coordinator`), shared by whoever asks,
stopped with the broker (:func:`close_coordinator`). So a transaction, its markers and its
index are the same whichever way a client came in. Readers that must not make one
(compaction, queries) read the index through here too.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from streamlab.broker.core import Broker
from streamlab.broker.producer_state import ProducerIds
from streamlab.broker.transaction_state import FILE_NAME, Range, TransactionIndex, read_index
from streamlab.broker.transactions import TransactionCoordinator

_registry: weakref.WeakKeyDictionary[Broker, TransactionCoordinator] = weakref.WeakKeyDictionary()
_registry_lock = threading.RLock()


@contextlib.contextmanager
def _append_lock(broker: Broker, topic: str, partition: int) -> Iterator[None]:
    with broker.log(topic, partition).append_lock:
        yield


def coordinator(broker: Broker, *, create: bool = True) -> TransactionCoordinator | None:
    """The broker's transaction coordinator, made on first use for the embedded API.

    Without ``create`` (a reader asking), None when no transaction was ever run on the
    directory; but a directory that has a transaction state file gets its coordinator
    now, so that transactions a crash left open are aborted before anything is read.
    An embedded coordinator's partition lock is the log's append lock (every append
    holds it), and it checks for expired transactions every half second until the broker
    closes (:func:`close_coordinator`)."""
    broker.check_open()
    with _registry_lock:
        found = _registry.get(broker)
        if found is not None:
            return found
        if not create and not (broker.data_dir / "server" / FILE_NAME).exists():
            return None
        (broker.data_dir / "server").mkdir(exist_ok=True)
        ids = ProducerIds(broker.data_dir / "server")
        return _open(broker, new_producer_id=ids.new, partition_lock=lambda t, p: _append_lock(broker, t, p))


def shared_coordinator(
    broker: Broker,
    *,
    new_producer_id: Callable[[], tuple[int, int]],
    partition_lock: Callable[[str, int], AbstractContextManager[None]],
) -> TransactionCoordinator:
    """The broker's coordinator for a server: the one the embedded API already uses on this
    broker (in-process ``Lab.serve``), with one more holder, or a new one. Close it once."""
    with _registry_lock:
        found = _registry.get(broker)
        if found is not None:
            return found.acquire()
        return _open(broker, new_producer_id=new_producer_id, partition_lock=partition_lock)


def _open(
    broker: Broker,
    *,
    new_producer_id: Callable[[], tuple[int, int]],
    partition_lock: Callable[[str, int], AbstractContextManager[None]],
) -> TransactionCoordinator:
    """Make the broker's coordinator (under ``_registry_lock``): registered as soon as it
    has read its state, taken out again when it shuts down."""

    def register(made: TransactionCoordinator) -> None:
        _registry.setdefault(broker, made)

    def forget(stopping: TransactionCoordinator) -> None:
        with _registry_lock:
            if _registry.get(broker) is stopping:
                del _registry[broker]

    made = TransactionCoordinator(
        broker, new_producer_id=new_producer_id, partition_lock=partition_lock, on_open=register, on_shutdown=forget
    )
    made.start_timer()
    return made


def close_coordinator(broker: Broker) -> None:
    """The broker is closing: its coordinator stops, whoever still holds it."""
    with _registry_lock:
        found = _registry.pop(broker, None)
    if found is not None:
        found.shutdown()


def current_index(broker: Broker) -> TransactionIndex:
    """The broker's transaction index now (empty if no transaction was ever run here)."""
    found = coordinator(broker, create=False)
    return TransactionIndex() if found is None else found.index_snapshot()


def compaction_view(broker: Broker, topic: str, partition: int) -> tuple[list[Range], int | None]:
    """What compaction must know of a partition's transactions: the aborted ranges (their
    records are removed and never count as a key's latest) and the last stable offset
    (nothing from there on is cleaned: it may still abort); ``([], None)`` if none ran.

    Never makes a coordinator (compaction runs while a broker opens, before one exists):
    without a live one the state file says what was last written, where a transaction
    open at a crash is still open, which is the safe reading."""
    with _registry_lock:
        live = _registry.get(broker)
    if live is not None:
        index = live.index_snapshot()
    elif (broker.data_dir / "server" / FILE_NAME).exists():
        index = read_index(broker.data_dir)
    else:
        return [], None
    stable = index.last_stable_offset(topic, partition, 2**63 - 1)
    return list(index.aborted.get((topic, partition), [])), (None if stable == 2**63 - 1 else stable)
