"""An embedded consumer's membership of a KIP-848 group (``group_protocol="consumer"``).

The embedded consumer heartbeats the same :class:`~streamlab.groups.consumer_group.ConsumerGroup`
that ConsumerGroupHeartbeat reaches over the wire, so embedded and wire members share a
group's partitions. The server assigns (``uniform`` or ``range``); the member reconciles
at every poll, as Kafka's consumer does: it reports what it owns, gives up what the group
asks it to revoke (the consumer's ``on_revoke`` runs, with an auto-commit first) and only
then is the partition handed to another member. Between polls a background thread keeps
the session alive, until ``max_poll_interval_ms`` passes without a poll (the member is
then left to expire, as Kafka's consumer leaves the group).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

from streamlab.broker.consumer_groups import ConsumerGroupRegistry
from streamlab.errors import FencedMemberEpochError, UnknownMemberError
from streamlab.groups.consumer_member import JOIN, LEAVE, LEAVE_STATIC, HeartbeatRequest, HeartbeatResult, new_member_id
from streamlab.model.types import TopicPartition


class ConsumerProtocolMembership:
    """The member's side of a consumer-protocol group: :meth:`step` at every poll."""

    def __init__(
        self,
        registry: ConsumerGroupRegistry,
        group_id: str,
        *,
        client_id: str,
        topics: Sequence[str],
        server_assignor: str | None,
        max_poll_interval_ms: int,
        group_instance_id: str | None,
    ) -> None:
        self._registry = registry
        self._clock = registry.clock  # max_poll_interval_ms counts on the broker's clock, as its sessions do
        self.group_id = group_id
        self.client_id = client_id
        self.topics = tuple(topics)
        self.server_assignor = server_assignor
        self.max_poll_interval_ms = max_poll_interval_ms
        self.group_instance_id = group_instance_id
        self.member_id: str | None = new_member_id()
        self.generation = JOIN  # the member epoch
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._last_poll = self._clock()
        self._stop = threading.Event()
        self._join()
        self._beater = threading.Thread(target=self._heartbeats, name=f"{client_id}-heartbeat", daemon=True)
        self._beater.start()

    def _send(self, req: HeartbeatRequest) -> HeartbeatResult:
        if req.epoch == JOIN:
            return self._registry.open(self.group_id).heartbeat(req)
        group = self._registry.get(self.group_id)
        if group is None:
            raise UnknownMemberError(f"member {self.member_id!r} is not in group {self.group_id!r}")
        return group.heartbeat(req)

    def _join(self) -> None:
        assert self.member_id is not None
        result = self._send(HeartbeatRequest(
            member_id=self.member_id, epoch=JOIN, client_id=self.client_id, instance_id=self.group_instance_id,
            rebalance_timeout_ms=self.max_poll_interval_ms, topics=self.topics,
            server_assignor=self.server_assignor, owned=frozenset(),
        ))  # fmt: skip
        self._take(result)

    def _take(self, result: HeartbeatResult) -> None:
        self.generation = result.epoch
        if result.assignment is not None:
            self._assignment = result.assignment

    def step(self, owned: set[TopicPartition]) -> tuple[set[TopicPartition] | None, bool]:
        """(the assignment to hold now; lost?). Lost: the group fenced or forgot this member
        (its session ran out); it rejoins at once and what it held is gone."""
        assert self.member_id is not None
        self._last_poll = self._clock()
        try:
            self._take(self._send(HeartbeatRequest(
                member_id=self.member_id, epoch=self.generation, client_id=self.client_id,
                instance_id=self.group_instance_id, owned=frozenset(owned),
            )))  # fmt: skip
        except (UnknownMemberError, FencedMemberEpochError):
            self._assignment = frozenset()
            self._join()
            return set(self._assignment), bool(owned)
        return set(self._assignment), False

    def change_subscription(self, topics: Sequence[str]) -> None:
        """A new subscription: the group bumps its epoch and the next polls reconcile."""
        assert self.member_id is not None
        self.topics = tuple(topics)
        self._take(self._send(HeartbeatRequest(
            member_id=self.member_id, epoch=self.generation, client_id=self.client_id,
            instance_id=self.group_instance_id, topics=self.topics,
        )))  # fmt: skip

    def check_commit(self) -> None:
        """Kafka's commit check for a member: its current member epoch (STALE_MEMBER_EPOCH)."""
        group = self._registry.get(self.group_id)
        if group is None:
            raise UnknownMemberError(f"member {self.member_id!r} is not in group {self.group_id!r}")
        group.check_member_epoch(self.member_id, self.generation)

    def _heartbeats(self) -> None:
        interval = self._registry.config_for(self.group_id).heartbeat_interval_ms / 1000
        while not self._stop.wait(interval):
            if self._clock() - self._last_poll > self.max_poll_interval_ms / 1000:
                continue  # no poll for max_poll_interval_ms: let the session run out
            group = self._registry.get(self.group_id)
            if group is None:
                continue
            with group.lock:
                member = group.members.get(self.member_id or "")
                if member is not None and member.epoch >= 0:
                    member.last_heartbeat = group.clock()

    def stop_heartbeats(self) -> None:
        """Stop heartbeating without leaving: what a crashed consumer looks like."""
        self._stop.set()

    def leave(self) -> None:
        self._stop.set()
        if self.member_id is None:
            return
        with contextlib.suppress(UnknownMemberError):  # gone already
            self._send(HeartbeatRequest(
                member_id=self.member_id, epoch=LEAVE if self.group_instance_id is None else LEAVE_STATIC,
                instance_id=self.group_instance_id,
            ))  # fmt: skip
        self.member_id = None
