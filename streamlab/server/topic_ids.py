"""Topic IDs: the UUIDs that newer Kafka APIs (share groups, Metadata v10+) name topics by.

The data directory stores no topic IDs, so each is derived from what identifies one
incarnation of a topic: the cluster id, its name and its creation time in the catalog.
The same topic keeps its ID across server restarts, and a topic deleted and created again
under the same name gets a new one, as in Kafka.
"""

from __future__ import annotations

import threading
import uuid

from streamlab.broker import Broker

ZERO_ID = uuid.UUID(int=0)


class TopicIds:
    """Name <-> ID for the broker's current topics; cached per topic incarnation."""

    def __init__(self, broker: Broker, cluster_id: str) -> None:
        self._broker = broker
        self._namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"streamlab-cluster:{cluster_id}")
        self._lock = threading.Lock()
        # name -> (the TopicState it was computed for, its id): a recreated topic is a new object
        self._cache: dict[str, tuple[object, uuid.UUID]] = {}

    def id_for(self, name: str) -> uuid.UUID | None:
        """The topic's ID, or None if there is no such topic."""
        state = self._broker.topics.get(name)
        if state is None:
            return None
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached[0] is state:
                return cached[1]
        created_ms = self._broker.catalog.topic_created_ms(name)
        if created_ms is None:
            return None
        topic_id = uuid.uuid5(self._namespace, f"{name}\x00{created_ms}")
        with self._lock:
            self._cache[name] = (state, topic_id)
        return topic_id

    def name_for(self, topic_id: uuid.UUID | None) -> str | None:
        """The name of the current topic with this ID, or None."""
        if topic_id is None or topic_id == ZERO_ID:
            return None
        with self._lock:
            for name, (state, known) in self._cache.items():
                if known == topic_id and self._broker.topics.get(name) is state:
                    return name
        for name in list(self._broker.topics):
            if self.id_for(name) == topic_id:
                return name
        return None
