"""The group coordinator: Kafka's classic consumer-group state machine.

Members join with the protocols (assignors) they support, each with its metadata (for
consumers, a subscription); once every known member has (re)joined, or the rebalance
timeout has expelled the ones that did not, a new generation opens: the group's leader
(its first member, as long as it stays) is chosen, and so is the protocol every member
supports. Two kinds of members share this machine:

* **Wire members** (``external``, Kafka clients of ``streamlab serve``) get Kafka's
  answers: :meth:`Group.join_wire` returns a future that resolves when the generation
  opens, giving the leader every member's metadata; the leader computes the assignment
  and sends it with its :meth:`Group.sync_wire`, whose future, and every other member's,
  resolves with that member's assignment bytes. Until the leader's arrives the group is
  ``CompletingRebalance``.
* **Embedded members** (``streamlab.connect(...).consumer``) join, heartbeat and read
  their assignment through plain calls. When the leader is one of them, the assignment
  is computed here with the leader's chosen assignor, which is what its client would
  compute. Eager assignors revoke everything at the start of a rebalance;
  ``cooperative-sticky`` revokes only the partitions that move and hands them out in a
  follow-up rebalance, so partitions that stay never stop.

Every future resolves within the group's rebalance timeout: the background tick expels
members that do not rejoin, and leaders that do not send the assignment, in time.
Futures are ``concurrent.futures.Future``: an asyncio handler awaits
``asyncio.wrap_future(f)``; a thread calls ``f.result(timeout)``.

Every generation's ownership changes are written to the catalog (``group_events``), so
the history survives restarts and can be drawn.

This module holds :class:`GroupCoordinator`: every group of a broker and the thread that
ticks them. One group's state machine is :class:`~streamlab.groups.group.Group`; its
requests, results and states are in :mod:`.state`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from streamlab.groups.group import Clock, Group, PartitionCounter, Recorder


class GroupCoordinator:
    """All groups of one broker, and the thread that expires silent members.

    ``initial_rebalance_delay_ms`` is Kafka's ``group.initial.rebalance.delay.ms`` for
    groups that wire clients start: the first generation waits that long (longer while
    members keep arriving, up to the rebalance timeout) so members started together
    share it. Kafka's default is 3 s; ours is short, for tests and notebooks.
    """

    def __init__(
        self,
        partitions_of: PartitionCounter,
        record: Recorder,
        *,
        tick_s: float = 0.05,
        initial_rebalance_delay_ms: int = 300,
        clock: Clock = time.monotonic,
        last_generation: Callable[[str], int] = lambda group_id: 0,
    ) -> None:
        self._groups: dict[str, Group] = {}
        self._last_generation = last_generation  # of a group's recorded history
        self._lock = threading.Lock()
        self._partitions_of = partitions_of
        self._record = record
        self._clock = clock
        self.initial_rebalance_delay_ms = initial_rebalance_delay_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(tick_s,), name="streamlab-groups", daemon=True)
        self._thread.start()

    def group(self, group_id: str) -> Group:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                group = self._groups[group_id] = Group(
                    group_id, self._partitions_of, self._record, clock=self._clock,
                    initial_rebalance_delay_ms=self.initial_rebalance_delay_ms,
                    generation=self._last_generation(group_id),
                )  # fmt: skip
            return group

    def groups(self) -> Mapping[str, Group]:
        with self._lock:
            return dict(self._groups)

    def _run(self, tick_s: float) -> None:
        while not self._stop.wait(tick_s):
            for group in list(self.groups().values()):
                group.tick()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
