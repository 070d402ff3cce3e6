"""How an embedded consumer's poll waits for records: fetch, and while a fetch finds
nothing, sleep until the broker's next append (or ``step`` seconds, to notice what a
timer changed) and fetch again, until the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

from streamlab.broker import Broker
from streamlab.model.types import Record


def fetch_until(
    broker: Broker, deadline: float, fetch: Callable[[], list[Record]], check_open: Callable[[], None], *, step: float
) -> list[Record]:
    """The first non-empty ``fetch()``, or the last (empty) one once ``deadline`` (monotonic)
    has passed; ``check_open()`` after every wait, so closing ends a waiting poll."""
    while True:
        records = fetch()
        left = deadline - time.monotonic()
        if records or left <= 0:
            return records
        broker.wait_for_data(min(left, step))
        check_open()
