"""The KIP-848 consumer groups of a broker (:class:`ConsumerGroupRegistry`, reached with
:func:`consumer_groups`), and the rule that a group id has one type.

The registry is attached to a broker on first use, like the share-group registry. What
Kafka keeps of a group in ``__consumer_offsets`` (the group epoch, each member's
subscription, epoch and assignment, the target assignment) is written to
``server/consumer-groups`` (:mod:`streamlab.storage.state_lines`) whenever it changes,
durably before the heartbeat that changed it is answered; the directory's next broker
takes it back, so after a crash members heartbeat on with their epochs and partitions
(the group epoch never goes back) and those that do not come back expire after the
session timeout. Committed offsets are in the offset store, ownership changes in
``group_events``.

Group configs (``consumer.session.timeout.ms``, ``consumer.heartbeat.interval.ms``, set with
IncrementalAlterConfigs on a GROUP resource) override the broker's settings
(``group.consumer.session.timeout.ms``, ...) from the next join of a member on.

A group id is a classic group, a consumer-protocol group or a share group, never two at
once: a consumer-protocol member cannot join a classic group that has members, or a share
group (GROUP_ID_NOT_FOUND, as Kafka answers when it cannot convert a group); a classic
member cannot join a consumer-protocol group that has members (INCONSISTENT_GROUP_PROTOCOL,
what Kafka 4 answers a classic member its consumer group cannot take). An empty group of
either kind becomes the other kind on first join, as Kafka converts empty groups; committed
offsets stay, being the group id's.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from streamlab.broker.core import Broker
from streamlab.broker.group_configs import group_config
from streamlab.broker.group_registry import GroupRegistry
from streamlab.broker.per_broker import PerBroker
from streamlab.errors import ConfigError, GroupTypeError, InconsistentProtocolError, StorageError
from streamlab.groups.consumer_group import ConsumerGroup
from streamlab.groups.consumer_member import ConsumerGroupConfig, ConsumerGroupDescription
from streamlab.groups.consumer_protocol import encode_assignment, encode_subscription
from streamlab.groups.state import CONSUMER, GroupDescription, GroupEvent, GroupState, MemberDescription
from streamlab.storage.state_lines import encode_line, fsync_dir, parse_lines

STATE_FILE: Final = "consumer-groups"
_REWRITE_AFTER_LINES: Final = 10_000

__all__ = [
    "ConsumerGroupRegistry",
    "check_not_consumer_protocol",
    "consumer_groups",
    "describe_consumer_group",
    "list_consumer_groups",
]


class ConsumerGroupRegistry(GroupRegistry[ConsumerGroup]):
    """The consumer-protocol groups of one broker."""

    def __init__(self, broker: Broker) -> None:
        super().__init__(broker)
        settings = broker.settings
        self.config = ConsumerGroupConfig(
            session_timeout_ms=settings.group_consumer_session_timeout_ms,
            heartbeat_interval_ms=settings.group_consumer_heartbeat_interval_ms,
        )
        self._state = GroupStateFile(broker.data_dir / "server" / STATE_FILE)
        for group_id, doc in self._state.load().items():
            group = self._new_group(group_id, self.config_for(group_id))
            group.restore(doc)
            self._groups[group_id] = group
            # Embedded members (no host: they never came over a connection) lived in the
            # process that wrote the file; they cannot heartbeat again, so they do not hold
            # their partitions for a session timeout.
            gone = [m["id"] for m in doc["members"] if not m["host"]]
            if gone:
                group.remove_members(gone, "embedded members of a closed broker")

    @property
    def clock(self) -> Callable[[], float]:
        """The broker's monotonic clock, which groups' sessions and their members' poll
        intervals count on."""
        return self._broker.clock.monotonic

    def _new_group(self, group_id: str, config: ConsumerGroupConfig) -> ConsumerGroup:
        return ConsumerGroup(group_id, self._partitions_of, self._topic_names, self._record, config,
                             clock=self.clock, save=self._save)  # fmt: skip

    def _save(self, group: ConsumerGroup) -> None:
        if not self._broker.closed:
            self._state.save(group.group_id, group.snapshot())  # empty too: its epoch goes on

    def _partitions_of(self, topics: Sequence[str]) -> dict[str, int]:
        topics_now = self._broker.topics
        return {t: topics_now[t].partitions for t in topics if t in topics_now}

    def _topic_names(self) -> list[str]:
        return sorted(self._broker.topics)

    def _record(self, group_id: str, events: list[GroupEvent]) -> None:
        if events and not self._broker.closed:
            self._broker.catalog.record_group_events(group_id, events)

    def open(self, group_id: str) -> ConsumerGroup:
        """The group ``group_id`` for a joining member, created if new; GroupTypeError if the
        id belongs to a classic group with members (a share group id is refused by the heartbeat handler)."""
        classic = self._broker.groups.groups().get(group_id)
        if classic is not None and classic.members:
            raise GroupTypeError(
                f"group {group_id!r} is a classic consumer group with {len(classic.members)} members; "
                "a consumer-protocol member cannot join it (group.protocol=classic, or another group id)"
            )
        config = self.config_for(group_id)
        group, _ = self._get_or_make(group_id, lambda: self._new_group(group_id, config))
        with group.lock:
            group.config = config  # group configs changed since: they apply from this join on
        return group

    def config_for(self, group_id: str) -> ConsumerGroupConfig:
        """The broker's settings, with the group's own ``consumer.session.timeout.ms`` and
        ``consumer.heartbeat.interval.ms`` group configs where it has them (a pair that does not
        fit together, a heartbeat not below the session timeout, falls back to the broker's)."""
        stored = group_config(self._broker, group_id)
        session, session_default = stored["consumer.session.timeout.ms"]
        interval, interval_default = stored["consumer.heartbeat.interval.ms"]
        try:
            return ConsumerGroupConfig(
                session_timeout_ms=self.config.session_timeout_ms if session_default else int(session),
                heartbeat_interval_ms=self.config.heartbeat_interval_ms if interval_default else int(interval),
            )
        except ConfigError:
            return self.config

    def forget_if_empty(self, group_id: str) -> bool:
        """Drop an empty group (a classic member takes the id over); False if it has members."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                return True
            with group.lock:
                group.expire()
                if group.members:
                    return False
                del self._groups[group_id]
                self._state.save(group_id, None)
                return True


class GroupStateFile:
    """The consumer groups' durable state: one checksummed line per change of a group (its
    whole snapshot, or its removal once empty); the last line of a group wins. Each write
    is fsynced before it returns; the file is rewritten compact when it opens and when it
    has grown long."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._written: dict[str, str] = {}  # group -> the JSON of its last line
        self._lines = 0

    def load(self) -> dict[str, dict[str, Any]]:
        """Every group's last snapshot; the file rewritten with only those."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        groups: dict[str, dict[str, Any]] = {}
        for line in parse_lines(data):  # a torn last line was never acknowledged
            if line.get("state") is None:
                groups.pop(line["group"], None)
            else:
                groups[line["group"]] = line["state"]
        with self._lock:
            self._rewrite(groups)
        return groups

    def save(self, group_id: str, state: dict[str, Any] | None) -> None:
        """Write ``group_id``'s state (None: gone) if it is not what was last written."""
        text = json.dumps(state, sort_keys=True)
        with self._lock:
            if self._written.get(group_id, "null") == text:
                return
            try:
                if self._lines >= _REWRITE_AFTER_LINES:
                    written = {g: json.loads(t) for g, t in self._written.items() if t != "null"}
                    self._rewrite({**written, group_id: state} if state is not None else
                                  {g: d for g, d in written.items() if g != group_id})  # fmt: skip
                    return
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, encode_line({"group": group_id, "state": state}))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:  # a full disk: the heartbeat fails, the member retries it
                raise StorageError(f"could not write the consumer groups' state to {self.path}: {exc}") from exc
            self._written[group_id] = text
            self._lines += 1

    def _rewrite(self, groups: dict[str, dict[str, Any]]) -> None:
        """Replace the file by one line per group (under ``self._lock``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(b"".join(encode_line({"group": g, "state": doc}) for g, doc in sorted(groups.items())))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self._written = {g: json.dumps(doc, sort_keys=True) for g, doc in groups.items()}
        self._lines = len(groups)


_registries = PerBroker(ConsumerGroupRegistry)


def consumer_groups(broker: Broker) -> ConsumerGroupRegistry:
    """The broker's consumer-protocol group registry, created on first use."""
    return _registries.get(broker)


def check_not_consumer_protocol(broker: Broker, group_id: str) -> None:
    """For a classic JoinGroup: raise InconsistentProtocolError if ``group_id`` is a
    consumer-protocol group with members (an empty one is dropped: the id becomes classic)."""
    registry = consumer_groups(broker)
    if registry.get(group_id) is not None and not registry.forget_if_empty(group_id):
        raise InconsistentProtocolError(
            f"group {group_id!r} uses the consumer group protocol (KIP-848); a classic member cannot join it "
            "(use group.protocol=consumer, or another group id)"
        )


def list_consumer_groups(broker: Broker) -> list[dict[str, Any]]:
    """One row per consumer-protocol group, shaped as :func:`~streamlab.broker.group_admin.list_groups`
    rows: the group epoch stands for the generation."""
    rows = []
    for group_id, group in sorted(consumer_groups(broker).groups().items()):
        with group.lock:
            group.expire()
            rows.append({"group": group_id, "state": str(group.state), "generation": group.epoch,
                         "members": len(group.members), "assignor": group.assignor(), "type": "consumer",
                         "assignment_epoch": group.assignment_epoch})  # fmt: skip
    return rows


# Kafka's consumer-group states as DescribeGroups (a classic API) shows them.
_CLASSIC_STATES = {"Empty": GroupState.EMPTY, "Assigning": GroupState.PREPARING_REBALANCE,
                   "Reconciling": GroupState.COMPLETING_REBALANCE, "Stable": GroupState.STABLE,
                   "Dead": GroupState.DEAD}  # fmt: skip


def describe_consumer_group(d: ConsumerGroupDescription) -> GroupDescription:
    """A consumer-protocol group in DescribeGroups' terms: protocol type ``consumer``, the
    assignor as protocol, each member's subscription and what it owns in the classic
    consumer protocol's bytes (tools that only speak DescribeGroups can read them)."""
    members = tuple(
        MemberDescription(
            m.member_id,
            m.instance_id,
            m.client_id,
            m.host,
            encode_subscription(m.topics),
            encode_assignment(m.assigned + m.pending_revocation),
        )
        for m in d.members
    )
    return GroupDescription(d.group_id, _CLASSIC_STATES[str(d.state)], CONSUMER, d.assignor, members)
