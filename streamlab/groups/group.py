"""The classic consumer group (:class:`Group`): staying in it, leaving it, timing out.

This top layer adds Heartbeat, LeaveGroup and the offset-commit check, and the
:meth:`Group.tick` that enforces every timeout (session, poll interval, rejoin and
SyncGroup deadlines) so that each parked future resolves within the rebalance timeout.
The layers below: :mod:`.group_core` (data, state transitions), :mod:`.rebalance`
(opening a generation, the assignment), :mod:`.join_sync` (JoinGroup/SyncGroup).
"""

from __future__ import annotations

from streamlab.errors import (
    FencedInstanceError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberError,
)
from streamlab.groups.join_sync import JoinSyncGroup
from streamlab.groups.state import GroupState


class Group(JoinSyncGroup):
    """One classic group. Every method takes :attr:`cv`; the coordinator's thread calls
    :meth:`tick` a few times a second."""

    # heartbeats, leaving, commits -------------------------------------------------------
    def heartbeat(
        self, member_id: str, generation: int, *, polled: bool = False, group_instance_id: str | None = None
    ) -> None:
        """Keep ``member_id`` alive; raises when it must rejoin (as Kafka's Heartbeat does)."""
        with self.cv:
            member = self._checked_member(member_id, group_instance_id)
            member.last_heartbeat = self._clock()
            if polled or member.external:
                member.last_poll = member.last_heartbeat
            if generation != self.generation:
                raise IllegalGenerationError(
                    f"generation {generation} is not the group's current generation {self.generation}"
                )
            if self.state == GroupState.PREPARING_REBALANCE:
                raise RebalanceInProgressError(f"group {self.group_id!r} is rebalancing; rejoin")

    def leave(self, member_id: str, reason: str = "left the group") -> None:
        """An embedded member leaves; nothing happens if it is already gone."""
        with self.cv:
            if member_id in self.members:
                self._remove(member_id, f"member {member_id} {reason}")
                self._maybe_complete()

    def leave_wire(self, member_id: str, group_instance_id: str | None = None, reason: str | None = None) -> str:
        """Kafka's LeaveGroup for one member (a static one may be named by instance id
        alone); returns the member id that left."""
        with self.cv:
            if group_instance_id is not None:
                current = self._static.get(group_instance_id)
                if current is None:
                    raise UnknownMemberError(f"no member with group.instance.id {group_instance_id!r}")
                if member_id and member_id != current:
                    raise FencedInstanceError(f"group.instance.id {group_instance_id!r} belongs to another member")
                member_id = current
            elif self._pending.pop(member_id, None) is not None:
                self._maybe_complete()
                return member_id
            if member_id not in self.members:
                raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r} (expired or left)")
            why = f"member {member_id} left the group" + (f" ({reason})" if reason else "")
            self._remove(member_id, why)
            self._maybe_complete()
            return member_id

    def check_commit(self, member_id: str | None, generation: int | None, group_instance_id: str | None = None) -> None:
        """Kafka's offset-commit validation. A commit names a member and its generation,
        unless the group is empty (then anyone may commit, as admin tools do). Commits
        from an old generation, unknown or fenced members are rejected, and so are all
        commits while the assignment is being handed out; an embedded member whose
        generation is being replaced gets RebalanceInProgressError, as Kafka's client
        raises it (its wire counterpart gets ILLEGAL_GENERATION, as from Kafka's broker).
        Hold :attr:`cv` across the check and the write so the generation cannot move in between."""
        if member_id is None:
            return
        generation = -1 if generation is None else generation
        with self.cv:
            if generation >= 0 or member_id or group_instance_id is not None:
                member = self._checked_member(member_id, group_instance_id)
                if generation != self.generation and not member.external and self.state != GroupState.STABLE:
                    # An embedded member whose generation is being replaced: Kafka's client
                    # raises RebalanceInProgress here (the application polls, rejoins, and
                    # its next commit lands); the broker's ILLEGAL_GENERATION is for the wire.
                    raise RebalanceInProgressError(
                        f"group {self.group_id!r} is rebalancing (generation {generation} is being replaced); "
                        "poll again, then commit"
                    )
                if generation != self.generation:
                    raise IllegalGenerationError(
                        f"commit from generation {generation} rejected: group {self.group_id!r} is at "
                        f"generation {self.generation}",
                    )
                member.last_heartbeat = self._clock()
            elif self.members:
                raise UnknownMemberError(f"group {self.group_id!r} has members: only they may commit")
            if self.state == GroupState.COMPLETING_REBALANCE:
                raise RebalanceInProgressError(f"group {self.group_id!r} is rebalancing; commit after rejoining")

    # timeouts ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Expire members whose session or poll interval ran out; notice new partitions;
        finish a rebalance whose stragglers ran out of time."""
        with self.cv:
            now = self._clock()
            for member_id, deadline in list(self._pending.items()):
                if now > deadline:
                    del self._pending[member_id]
            for member in list(self.members.values()):
                if member.awaiting():  # a request is parked with us: it is alive
                    member.last_heartbeat = member.last_poll = now
                elif now - member.last_heartbeat > member.session_timeout_ms / 1000:
                    self._remove(member.member_id, f"member {member.member_id} timed out (session.timeout.ms)")
                elif not member.external and now - member.last_poll > member.rebalance_timeout_ms / 1000:
                    self._remove(member.member_id, f"member {member.member_id} left: max.poll.interval.ms exceeded")
            if self.state == GroupState.STABLE:
                topics = sorted({t for m in self.members.values() for t in m.topics})
                if self._partitions_of(topics) != self._known_partitions:
                    self._begin_rebalance("partitions added")
            if self._pending_sync and now > self._sync_deadline and self.state != GroupState.PREPARING_REBALANCE:
                for member_id in sorted(self._pending_sync):
                    self._remove(member_id, f"member {member_id} did not send SyncGroup in time")
            if (
                self.state == GroupState.PREPARING_REBALANCE
                and now - self._rebalance_started > self._rebalance_timeout()
            ):
                for member in [m for m in self.members.values() if m.joined_generation != self.generation + 1]:
                    self._remove(member.member_id, f"member {member.member_id} did not rejoin in time")
                self._pending.clear()
            self._maybe_complete()
