"""Transaction timeouts: which transactions are overdue, and the thread that has the
coordinator deal with them.

A transaction open longer than its ``transaction.timeout.ms`` is aborted and its producer
fenced, as Kafka does; one whose completion stopped half-way (a marker that could not be
written) is finished. :meth:`~streamlab.broker.transactions.TransactionCoordinator.abort_expired`
does both, for the transactions :func:`overdue` picks; :class:`ExpiryTimer` calls it every
half second until the coordinator shuts down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from streamlab.broker.transaction_state import Transaction

log = logging.getLogger("streamlab.broker.transactions")


def timed_out(txn: Transaction, now_ms: int) -> bool:
    """Whether ``txn`` is ongoing past its timeout at ``now_ms``."""
    return txn.state == "Ongoing" and now_ms - txn.started_ms > txn.timeout_ms


def overdue(txn: Transaction, now_ms: int) -> bool:
    """Whether ``txn`` must be aborted (timed out) or finished (completing) now."""
    return txn.state.startswith("Prepare") or timed_out(txn, now_ms)


class ExpiryTimer:
    """A daemon thread that calls ``check`` every ``interval_s`` until :meth:`stop`."""

    def __init__(self, check: Callable[[], object], interval_s: float) -> None:
        self._check = check
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="streamlab-txn-timeouts", daemon=True
        )
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self._check()
            except Exception:  # keep checking: one failure (a full disk) must not end timeouts
                log.exception("aborting expired transactions failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
