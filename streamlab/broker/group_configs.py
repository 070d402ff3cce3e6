"""Group configs (Kafka's GROUP config resources) other than a share group's own settings.

Kafka keeps one set of dynamic configs per group id, whatever the group's type:
``consumer.session.timeout.ms`` and ``consumer.heartbeat.interval.ms`` for consumer groups
of the KIP-848 protocol, ``share.session.timeout.ms``, ``share.heartbeat.interval.ms`` and
``share.isolation.level`` for share groups. The share-group settings streamlab acts on
(lock duration, delivery count, reset, dead-letter topic) live with the share group
(:mod:`streamlab.broker.share_registry`); these live here, in ``group_configs.json``
written atomically, validated with Kafka's default broker bounds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from streamlab.broker.core import Broker
from streamlab.config import choice_config, integer_config
from streamlab.errors import ConfigError, StorageError
from streamlab.storage import manifest

FILE = "group_configs.json"


# name -> (Kafka's default, validator); the bounds are Kafka's broker defaults
# (group.consumer.min/max.session.timeout.ms, ...).
_CONSUMER, _SHARE = "group.consumer.min/max", "group.share.min/max"
GROUP_CONFIGS: dict[str, tuple[Any, Any]] = {
    "consumer.session.timeout.ms": (45_000, integer_config(45_000, 60_000, bounds=f"{_CONSUMER}.session.timeout.ms")),
    "consumer.heartbeat.interval.ms": (
        5_000,
        integer_config(5_000, 15_000, bounds=f"{_CONSUMER}.heartbeat.interval.ms"),
    ),
    "share.session.timeout.ms": (45_000, integer_config(45_000, 60_000, bounds=f"{_SHARE}.session.timeout.ms")),
    "share.heartbeat.interval.ms": (5_000, integer_config(5_000, 15_000, bounds=f"{_SHARE}.heartbeat.interval.ms")),
    "share.isolation.level": ("read_uncommitted", choice_config("read_uncommitted", "read_committed")),
}

_lock = threading.Lock()


def _load(broker: Broker) -> dict[str, dict[str, Any]]:
    path = broker.data_dir / FILE
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StorageError(f"could not read {path}: {exc}") from exc
    return {g: {k: v for k, v in c.items() if k in GROUP_CONFIGS} for g, c in loaded.items() if isinstance(c, dict)}


def group_config(broker: Broker, group_id: str) -> dict[str, tuple[Any, bool]]:
    """Every group config of ``group_id``: name -> (value, is_default)."""
    with _lock:
        stored = _load(broker).get(group_id, {})
    return {name: (stored.get(name, default), name not in stored) for name, (default, _) in GROUP_CONFIGS.items()}


def check(name: str, value: str) -> Any:
    if name not in GROUP_CONFIGS:
        raise ConfigError(f"unknown group config {name!r}")
    return GROUP_CONFIGS[name][1](f"group config {name}", value)


def alter(broker: Broker, group_id: str, sets: Mapping[str, str], deletes: list[str], *, validate_only: bool) -> None:
    """Set (validated) and delete (back to the default) group configs, durably."""
    checked = {name: check(name, value) for name, value in sets.items()}
    for name in deletes:
        if name not in GROUP_CONFIGS:
            raise ConfigError(f"unknown group config {name!r}")
    if validate_only:
        return
    with _lock:
        configs = _load(broker)
        group = {k: v for k, v in configs.get(group_id, {}).items() if k not in deletes} | checked
        if group:
            configs[group_id] = group
        else:
            configs.pop(group_id, None)
        try:
            manifest.write_atomically(broker.data_dir / FILE, configs)
        except OSError as exc:
            raise StorageError(f"could not write {broker.data_dir / FILE}: {exc}") from exc
