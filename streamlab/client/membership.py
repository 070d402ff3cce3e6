"""A consumer's side of group membership: join, follow rebalances, heartbeat, leave.

The consumer calls :meth:`GroupMembership.step` at every poll; it returns the assignment
the consumer should hold now. A background thread heartbeats so a consumer that is slow
between polls stays in the group until ``max_poll_interval_ms``; a consumer whose thread
or process dies stops heartbeating and is expelled after ``session_timeout_ms``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from streamlab.errors import GroupError, IllegalGenerationError, RebalanceInProgressError, UnknownMemberError
from streamlab.groups.group import Group
from streamlab.groups.state import COOPERATIVE, GroupState
from streamlab.model.types import TopicPartition


class GroupMembership:
    def __init__(
        self,
        group: Group,
        *,
        client_id: str,
        topics: Sequence[str],
        assignors: Sequence[str],
        session_timeout_ms: int,
        max_poll_interval_ms: int,
        group_instance_id: str | None,
    ) -> None:
        self.group = group
        self.client_id = client_id
        self.topics = tuple(topics)
        self.assignors = tuple(assignors)
        self.session_timeout_ms = session_timeout_ms
        self.max_poll_interval_ms = max_poll_interval_ms
        self.group_instance_id = group_instance_id
        self.member_id: str | None = None
        self.generation = -1
        self.lost = False
        self._stop = threading.Event()
        self._join()
        self._beater = threading.Thread(target=self._heartbeats, name=f"{client_id}-heartbeat", daemon=True)
        self._beater.start()

    @property
    def cooperative(self) -> bool:
        return self.group.protocol in COOPERATIVE

    def _join(self) -> None:
        self.member_id = self.group.join(
            self.member_id,
            client_id=self.client_id,
            topics=self.topics,
            protocols=self.assignors,
            session_timeout_ms=self.session_timeout_ms,
            rebalance_timeout_ms=self.max_poll_interval_ms,
            group_instance_id=self.group_instance_id,
        )

    def step(self, owned: set[TopicPartition]) -> tuple[set[TopicPartition] | None, bool]:
        """(the assignment to hold now, or None while a rebalance is in progress; lost?)."""
        assert self.member_id is not None
        with self.group.cv:
            try:
                self.group.heartbeat(self.member_id, self.generation, polled=True)
            except UnknownMemberError:
                self.member_id, self.generation = None, -1
                self._join()
                return (set(), True) if owned else (None, False)
            except (RebalanceInProgressError, IllegalGenerationError):
                member = self.group.members.get(self.member_id)
                if member is not None and member.joined_generation != self.group.generation + 1:
                    self._join()
            if self.group.state == GroupState.STABLE:
                self.generation, assignment = self.group.assignment_of(self.member_id)
                return set(assignment), False
            if self.group.state == GroupState.PREPARING_REBALANCE and self.cooperative:
                return owned, False  # cooperative: keep consuming what we own meanwhile
            return None, False

    def change_subscription(self, topics: Sequence[str]) -> None:
        self.topics = tuple(topics)
        self._join()

    def check_commit(self) -> None:
        self.group.check_commit(self.member_id, self.generation)

    def _heartbeats(self) -> None:
        interval = self.session_timeout_ms / 3000
        while not self._stop.wait(interval):
            if self.member_id is None:
                continue
            try:
                with self.group.cv:
                    member = self.group.members.get(self.member_id)
                    if member is not None:
                        member.last_heartbeat = _monotonic()
            except GroupError:
                pass

    def stop_heartbeats(self) -> None:
        """Stop heartbeating without leaving: what a crashed consumer looks like."""
        self._stop.set()

    def leave(self) -> None:
        self._stop.set()
        if self.member_id is not None:
            self.group.leave(self.member_id)
            self.member_id = None


def _monotonic() -> float:
    import time

    return time.monotonic()
