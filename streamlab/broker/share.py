"""Share groups on the broker: members, fetching under acquisition locks, acknowledgements,
dead letters, and the registry of a broker's share groups.

Every member of a share group reads every partition of the group's topics; the
:class:`~streamlab.groups.share.SharePartition` of each (group, topic, partition) decides
which records each fetch hands out. Expiry is lazy: every call into a group first expires
members whose session ran out (their records come back) and locks that ran out, so there
is no background thread. A record archived as rejected or past the delivery count limit is
copied to the group's dead-letter topic, when it has one, before the state change is
saved, so a crash in between gives a duplicate dead letter rather than a lost one.

The registry (:func:`share_groups`) is attached to a broker on first use and loads the
groups stored in the catalog, so share-group state survives a broker restart.

The pieces live in one module each; this one gathers the names the server handlers, the
client and the notebook import:

- :mod:`.share_group`: :class:`ShareGroup`, its members and fetch deliveries
- :mod:`.dead_letters`: copying dead letters to the dead-letter topic
- :mod:`.share_registry`: the registry and the broker-level functions
"""

from __future__ import annotations

from streamlab.broker.dead_letters import DLQ_HEADER
from streamlab.broker.share_group import DEFAULT_SESSION_TIMEOUT_MS, Delivery, ShareGroup, ShareMember
from streamlab.broker.share_registry import (
    ShareGroupRegistry,
    check_not_classic,
    check_not_share,
    join_share_group,
    list_share_groups,
    share_groups,
    share_partitions,
    share_state,
)

__all__ = [
    "DEFAULT_SESSION_TIMEOUT_MS",
    "DLQ_HEADER",
    "Delivery",
    "ShareGroup",
    "ShareGroupRegistry",
    "ShareMember",
    "check_not_classic",
    "check_not_share",
    "join_share_group",
    "list_share_groups",
    "share_groups",
    "share_partitions",
    "share_state",
]
