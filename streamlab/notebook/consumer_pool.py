"""Consumers of one group run inside the notebook (:class:`ConsumerPool`), so that a
notebook can add, stop and crash members and watch the group rebalance.

Separate from the views in :mod:`streamlab.notebook.group_state`: this one acts on the
group (it joins, polls and commits) where they only read it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from streamlab.errors import StreamlabError
from streamlab.front.lab import Lab
from streamlab.model.types import TopicPartition
from streamlab.notebook.state_helpers import group_snapshot, num, partitions_text, records_of
from streamlab.notebook.ticker import Ticker

__all__ = ["ConsumerPool"]


class ConsumerPool:
    """Consumers of one group living in this process, subscribed to ``topic`` (a name or a
    list of names) and polled by a background thread.

    They read from ``auto_offset_reset="earliest"`` and commit what they read. ``stop``
    closes one (it leaves the group: a rebalance at once); ``crash`` makes one go silent
    (no leave, no heartbeats), so the coordinator expels it after ``session_timeout_ms``.
    ``static=True`` gives each member its client id as ``group.instance.id`` (static
    membership), which also makes assignors' tie-breaks repeatable from run to run.
    """

    def __init__(
        self,
        lab: Lab,
        topic: str | Sequence[str],
        group: str,
        *,
        prefix: str = "notebook",
        interval: float = 0.05,
        static: bool = False,
        **config: Any,
    ) -> None:
        self.lab, self.group, self.prefix, self.static = lab, group, prefix, static
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self.config = {"auto_offset_reset": "earliest", "enable_auto_commit": False, "session_timeout_ms": 3000,
                       **config}  # fmt: skip
        self.consumers: dict[str, Any] = {}
        self.consumed: dict[str, int] = {}
        self.errors: list[str] = []
        self._gone: set[str] = set()  # member ids of consumers stopped or crashed here
        self._lock = threading.RLock()
        self._added = 0
        self._ticker = Ticker(self.poll_once, interval, name=f"streamlab-pool-{group}")

    @property
    def members(self) -> list[str]:
        with self._lock:
            return list(self.consumers)

    def add(self, client_id: str | None = None) -> str:
        with self._lock:
            if client_id is None:
                self._added += 1
                client_id = f"{self.prefix}-{self._added}"
                while client_id in self.consumers:
                    self._added += 1
                    client_id = f"{self.prefix}-{self._added}"
            static = {"group_instance_id": client_id} if self.static else {}
            consumer = self.lab.consumer(self.topics, group=self.group, client_id=client_id, **static, **self.config)
            self.consumers[client_id], self.consumed[client_id] = consumer, 0
        self._ticker.start()
        return client_id

    def _take(self, client_id: str | None) -> tuple[str, Any] | None:
        if not self.consumers:
            return None
        client_id = client_id if client_id is not None else next(reversed(self.consumers))
        consumer = self.consumers.pop(client_id)
        if getattr(consumer, "member_id", None) is not None:
            self._gone.add(consumer.member_id)
        return client_id, consumer

    def stop(self, client_id: str | None = None) -> str | None:
        """Close a member (default: the newest); it leaves the group."""
        with self._lock:
            taken = self._take(client_id)
            if taken is not None:
                taken[1].close()
            return taken[0] if taken else None

    def crash(self, client_id: str | None = None) -> str | None:
        """Make a member (default: the newest) stop without leaving, like a killed process."""
        with self._lock:
            taken = self._take(client_id)
            if taken is not None:
                die = getattr(taken[1], "_die", None)
                die() if die is not None else taken[1].close()
            return taken[0] if taken else None

    def poll_once(self) -> None:
        with self._lock:
            for client_id, consumer in list(self.consumers.items()):
                try:
                    records = consumer.poll(timeout=0, max_records=500)
                    if records:
                        self.consumed[client_id] += len(records)
                        consumer.commit()
                except StreamlabError as exc:  # a commit racing a rebalance: retried next time
                    self.errors = [*self.errors[-9:], f"{client_id}: {exc}"]

    def assignments(self) -> list[dict[str, Any]]:
        """What each member here holds, as ``describe_group`` rows (client id as member)."""
        with self._lock:
            return [{"member": cid, "topic": tp.topic, "partition": tp.partition}
                    for cid, c in self.consumers.items() for tp in sorted(c.assignment())]  # fmt: skip

    def _covered(self) -> bool:
        """Without the group's state (a Lab that cannot describe groups): the members here
        hold every partition of their topics, each exactly once."""
        rows = self.assignments()
        held = [(r["topic"], r["partition"]) for r in rows]
        wanted = {(t, int(r["partition"])) for t in self.topics for r in records_of(self.lab.offsets(t))}
        everyone = len({r["member"] for r in rows}) == min(len(self.consumers), len(wanted))
        return len(held) == len(set(held)) and set(held) == wanted and everyone

    def settled(self) -> bool:
        """The group is stable and every member here holds what the coordinator assigned it."""
        try:
            row, described = group_snapshot(self.lab, self.group)
        except StreamlabError:
            return self._covered()
        if row is None or row["state"] != "Stable" or int(row["members"]) < len(self.consumers):
            return False
        if any(r["member"] in self._gone for r in described):
            return False  # a crashed member still holds partitions until its session times out
        with self._lock:
            for consumer in self.consumers.values():
                member_id = getattr(consumer, "member_id", None)
                given = {TopicPartition(str(r["topic"]), int(r["partition"]))
                         for r in described if r["member"] == member_id}  # fmt: skip
                if member_id is None or set(consumer.assignment()) != given:
                    return False
        return True

    def settle(self, timeout: float = 15.0) -> bool:
        """Poll until :meth:`settled` (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_once()
            if self.settled():
                return True
            time.sleep(0.02)
        return False

    def catch_up(self, timeout: float = 15.0) -> bool:
        """Poll until the group has committed every record of the topic (True), or
        ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_once()
            ends = {(t, int(r["partition"])): int(r["high_watermark"]) for t in self.topics
                    for r in records_of(self.lab.offsets(t))}  # fmt: skip
            lag = records_of(self.lab.lag(self.group))
            done = {(str(r["topic"]), int(r["partition"])): int(r["committed"]) for r in lag}
            if all(done.get(tp, -1) >= end for tp, end in ends.items() if end):
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._ticker.stop()
        with self._lock:
            while self.consumers:
                self.stop()

    def summary(self) -> str:
        with self._lock:
            if not self.consumers:
                return f"no consumers of {self.group} running in this notebook"
            return "\n".join(
                f"{cid}: {partitions_text(sorted(c.assignment()))}; read {num(self.consumed[cid])} records"
                for cid, c in self.consumers.items()
            )
