"""The share groups of a broker (:class:`ShareGroupRegistry`, reached with
:func:`share_groups`) and the broker-level operations on them: joining, the checks that
keep share and classic group names apart, and the rows the notebook and admin views show.

The registry is attached to a broker on first use and loads the groups stored in the
catalog, so share-group state survives a broker restart. Separate from
:mod:`.share_group` because it is about finding and creating groups, not running one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamlab.broker.consumer_groups import consumer_groups
from streamlab.broker.core import Broker
from streamlab.broker.group_registry import GroupRegistry
from streamlab.broker.per_broker import PerBroker
from streamlab.broker.share_group import DEFAULT_SESSION_TIMEOUT_MS, ShareGroup
from streamlab.broker.topics import create_topic
from streamlab.errors import ConfigError, GroupTypeError
from streamlab.groups import share
from streamlab.groups.share import RecordState
from streamlab.model.share import ShareGroupConfig
from streamlab.storage.share_store import ShareStore

__all__ = [
    "ShareGroupRegistry",
    "check_not_classic",
    "check_not_share",
    "join_share_group",
    "list_share_groups",
    "share_groups",
    "share_partitions",
    "share_state",
]


class ShareGroupRegistry(GroupRegistry[ShareGroup]):
    """The share groups of one broker, loaded from the catalog when first needed."""

    def __init__(self, broker: Broker) -> None:
        super().__init__(broker)
        self.store = ShareStore(broker.catalog)
        for group_id, config in share.saved_groups(self.store).items():
            group = ShareGroup(broker, self.store, group_id, config, share.load(self.store, group_id, config))
            self._groups[group_id] = group
            with group.lock:
                group._sweep(broker.clock.time_ms())  # records acquired when the broker stopped come back now

    def open_for_wire(self, group_id: str) -> ShareGroup:
        """The share group ``group_id`` with its stored config, created with the defaults if
        new (over the wire, settings come from group configs, not from each member)."""
        check_not_classic(self._broker, group_id)
        group, _ = self._get_or_make(group_id, lambda: self._new_group(group_id, ShareGroupConfig()))
        return group

    def _new_group(self, group_id: str, config: ShareGroupConfig) -> ShareGroup:
        """A new group, its config stored at once: it is a share group across restarts."""
        group = ShareGroup(self._broker, self.store, group_id, config)
        share.save_group(self.store, group_id, config)
        return group

    def configure(self, group_id: str, changes: dict[str, Any]) -> ShareGroupConfig:
        """Change settings of ``group_id`` (created if new), whatever members it has:
        Kafka's group configs apply to what happens next."""
        group = self.open_for_wire(group_id)
        with group.lock:
            merged = group.config.updated(changes)
            dlq = merged.dead_letter_topic
            if dlq is not None and dlq not in self._broker.topics:
                create_topic(self._broker, dlq, 1)
            group.reconfigure(merged)
            return merged

    def open(self, group_id: str, config: ShareGroupConfig, topics: Sequence[str]) -> ShareGroup:
        """The share group ``group_id``, created if new; ``config`` becomes its config when it
        has no members, and must match it when it has."""
        check_not_classic(self._broker, group_id)
        if config.dead_letter_topic is not None:
            if config.dead_letter_topic in topics:
                raise ConfigError(f"the dead-letter topic {config.dead_letter_topic!r} is one the group reads")
            if config.dead_letter_topic not in self._broker.topics:
                create_topic(self._broker, config.dead_letter_topic, 1)
        group, made = self._get_or_make(group_id, lambda: self._new_group(group_id, config))
        if made:
            return group
        with group.lock:
            group._sweep(self._broker.clock.time_ms())
            if group.config != config:
                if group.members:
                    raise ConfigError(
                        f"share group {group_id!r} has {len(group.members)} members using {group.config}; "
                        f"a new member asked for {config}. Use the same settings, or close the members first"
                    )
                group.reconfigure(config)
        return group


_registries = PerBroker(ShareGroupRegistry)


def share_groups(broker: Broker) -> ShareGroupRegistry:
    """The broker's share-group registry, created (and loaded from the catalog) on first use."""
    return _registries.get(broker)


def check_not_classic(broker: Broker, group_id: str) -> None:
    """Raise :class:`GroupTypeError` if ``group_id`` is a classic consumer group: it has
    active members or committed offsets."""
    live = broker.groups.groups().get(group_id)
    members = len(live.members) if live is not None else 0
    kip848 = consumer_groups(broker).get(group_id)  # a consumer-protocol (KIP-848) group
    if kip848 is not None and kip848.members:
        raise GroupTypeError(f"{group_id!r} is a consumer group (group.protocol=consumer); a share group needs "
                             "a name of its own")  # fmt: skip
    offsets = broker.catalog.committed(group_id)
    if members or offsets:
        what = f"{members} active members" if members else f"committed offsets for {len(offsets)} partitions"
        raise GroupTypeError(
            f"{group_id!r} is a classic consumer group ({what}); a share group needs a name of its own"
        )


def check_not_share(broker: Broker, group_id: str) -> None:
    """Raise :class:`GroupTypeError` if ``group_id`` is a share group (for classic consumers)."""
    if share_groups(broker).get(group_id) is not None:
        raise GroupTypeError(f"{group_id!r} is a share group; a classic consumer group needs a name of its own")


def join_share_group(
    broker: Broker,
    group_id: str,
    topics: Sequence[str],
    config: ShareGroupConfig,
    *,
    client_id: str,
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
) -> tuple[ShareGroup, str]:
    """Open (or create) the share group and join it; returns the group and the member id."""
    for topic in topics:
        broker.topic(topic)
    group = share_groups(broker).open(group_id, config, topics)
    return group, group.join(client_id=client_id, topics=topics, session_timeout_ms=session_timeout_ms)


def share_state(broker: Broker, group_id: str) -> list[dict[str, Any]]:
    """One row per in-flight record of ``group_id`` (empty for an unknown group)."""
    group = share_groups(broker).get(group_id)
    return [] if group is None else group.state_rows()


def share_partitions(broker: Broker, group_id: str) -> list[dict[str, Any]]:
    """One row per share-partition of ``group_id``: SPSO, SPEO, log range, counts by state."""
    group = share_groups(broker).get(group_id)
    return [] if group is None else group.partition_rows()


def list_share_groups(broker: Broker) -> list[dict[str, Any]]:
    rows = []
    for group_id, group in sorted(share_groups(broker).groups().items()):
        with group.lock:
            in_flight = sum(
                1 for sp in group.partitions.values() for r in sp.records.values() if r.state == RecordState.ACQUIRED
            )
            rows.append({"group": group_id, "members": len(group.members), "partitions": len(group.partitions),
                         "acquired": in_flight, "delivery_count_limit": group.config.delivery_count_limit,
                         "dead_letter_topic": group.config.dead_letter_topic})  # fmt: skip
    return rows
