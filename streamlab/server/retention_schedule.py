"""Retention and compaction on a schedule, as Kafka's log cleaner and retention checks run.

Opening a directory and sealing a segment already apply retention; a server that runs for
days with topics nobody writes to any more would otherwise never expire or compact them.
Every ``log.retention.check.interval.ms`` (Kafka's default: 5 minutes) one round of
:func:`~streamlab.broker.retention.apply_retention` runs in a worker thread, so the event
loop keeps serving. Rounds never overlap: one that outlasts the interval makes the rounds
it covered be skipped, as Kafka's scheduler does. A failed round is one warning line and
the next round tries again; it never stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from streamlab.broker import Broker
from streamlab.broker.retention import RetentionResult, apply_retention
from streamlab.errors import ConfigError

__all__ = ["DEFAULT_CHECK_INTERVAL_MS", "RetentionSchedule", "check_interval"]

log = logging.getLogger("streamlab.server")

DEFAULT_CHECK_INTERVAL_MS = 300_000  # Kafka's log.retention.check.interval.ms


def check_interval(interval_ms: int) -> int:
    """``interval_ms`` if it is a valid log.retention.check.interval.ms, else ConfigError."""
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or interval_ms <= 0:
        raise ConfigError(f"log.retention.check.interval.ms must be a positive int, not {interval_ms!r}")
    return interval_ms


class RetentionSchedule:
    """Runs ``apply`` (retention and compaction of every partition) every ``interval_ms``."""

    def __init__(
        self,
        broker: Broker,
        *,
        interval_ms: int = DEFAULT_CHECK_INTERVAL_MS,
        apply: Callable[..., RetentionResult] = apply_retention,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.interval_s = check_interval(interval_ms) / 1000
        self._apply = apply
        self._clock = clock
        self.rounds = 0
        self.failures = 0

    def _round(self) -> RetentionResult:
        return self._apply(self.broker, now_ms=int(self._clock() * 1000))

    async def run(self) -> None:
        """Run rounds until cancelled."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval_s
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                result = await loop.run_in_executor(None, self._round)
            except Exception as exc:  # a broken round must not end the schedule, nor the server
                self.failures += 1
                log.warning("retention check failed, trying again in %gs: %s: %s",
                            self.interval_s, type(exc).__name__, exc)  # fmt: skip
            else:
                if result.segments_deleted or result.records_compacted:
                    log.info("retention check: %d segments deleted, %d records compacted away",
                             result.segments_deleted, result.records_compacted)  # fmt: skip
            self.rounds += 1
            # Fixed rate; the ticks a long round covered are skipped, never run back to back.
            now = loop.time()
            due += self.interval_s
            if due <= now:
                due += self.interval_s * ((now - due) // self.interval_s + 1)
