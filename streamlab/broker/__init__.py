"""Broker services: one module per operation over the storage layer.

``core.Broker`` holds the state (catalog, open partition logs, the data-arrival signal);
``topics``, ``produce``, ``fetch``, ``offsets``, ``retention`` and ``query`` are the
operations. The client API and the Kafka protocol server are two fronts on these.
"""

from streamlab.broker.core import Broker, TopicState

__all__ = ["Broker", "TopicState"]
