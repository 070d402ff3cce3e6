"""Sealing on time: ``segment.ms``, checked by a timer of each open broker.

A segment is sealed into Parquet when it reaches ``segment.bytes`` (on append) or when its
first record was appended ``segment.ms`` ago, by the broker's clock. Kafka checks its
``segment.ms`` only when a record arrives; here a timer thread of the broker checks every
partition about once a second, so a topic a notebook filled and left becomes typed Parquet
on its own (the default ``segment.ms`` is a minute; see ``config.py``). The thread runs in
every process that opens a directory (a notebook's embedded lab, ``streamlab serve``,
``lab.serve()``); it reads the broker's clock, so with a ``ManualClock`` it seals when the
test advances the clock past ``segment.ms`` and calls :func:`seal_due` (or lets the thread
see it).

A time seal is the same :meth:`~streamlab.storage.base.PartitionLog.roll` as a size seal,
with its crash points and recovery. Retention and compaction are not run after it: the
next size seal, ``lab.apply_retention()`` or the server's schedule does that.
"""

from __future__ import annotations

import logging
import threading

from streamlab.broker.core import Broker

log = logging.getLogger("streamlab.broker")
TICK_S = 1.0  # how often the timer looks (wall clock); ages are measured on the broker's clock


def seal_due(broker: Broker) -> int:
    """Seal every active segment whose age has reached its topic's ``segment.ms``; how many.
    A partition that cannot be sealed now (disk full) keeps its active segment, with a
    warning, and is tried again on the next round."""
    with broker.lock:
        if broker.closed:
            return 0
        due = [(state.config["segment.ms"], state.logs[:]) for state in broker.topics.values()]
    now_ms = broker.clock.time_ms()
    sealed = 0
    for segment_ms, logs in due:
        for partition_log in logs:
            try:
                sealed += partition_log.roll_if_older(segment_ms, now_ms)
            except Exception as exc:  # a failed seal keeps the records where they are (durable)
                log.warning("%s/%d: sealing on segment.ms failed, will retry: %s: %s",
                            partition_log.topic, partition_log.partition, type(exc).__name__, exc)  # fmt: skip
    return sealed


class SegmentTimer:
    """The thread that calls :func:`seal_due` every :data:`TICK_S` until :meth:`stop`."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamlab-segment-ms", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(TICK_S):
            seal_due(self._broker)

    def stop(self) -> None:
        """Stop the timer and wait for a round in progress to finish."""
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
