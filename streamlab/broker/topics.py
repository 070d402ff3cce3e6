"""Create, describe, grow and delete topics."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from streamlab.broker.core import Broker, TopicState
from streamlab.config import topic_config
from streamlab.errors import InvalidPartitionsError, TopicExistsError
from streamlab.model.names import MAX_PARTITIONS as MAX_PARTITIONS  # re-exported: the server checks it
from streamlab.model.names import validate_topic_name
from streamlab.storage.faults import crash_point

logger = logging.getLogger("streamlab.broker")
RECREATE_WAIT_S = 5.0


def _check_partitions(partitions: object) -> int:
    if isinstance(partitions, bool) or not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidPartitionsError(f"partitions must be an integer from 1 to {MAX_PARTITIONS}, got {partitions!r}")
    return partitions


def create_topic(broker: Broker, name: str, partitions: int = 1, config: Mapping[str, Any] | None = None) -> None:
    validate_topic_name(name)
    partitions = _check_partitions(partitions)
    full_config = topic_config(config)
    _wait_for_readers_of_deleted(broker, name)
    with broker.lock:
        broker.check_open()
        if name in broker.topics:
            raise TopicExistsError(f"topic {name!r} already exists", topic=name)
        if any(log.pinned for log in broker.deleted_logs.get(name, ())):
            raise TopicExistsError(
                f"topic {name!r} was deleted, and reads that began before that still hold its files "
                f"(Kafka: marked for deletion); create it again when they finish", topic=name,
            )  # fmt: skip
        broker.deleted_logs.pop(name, None)
        broker.catalog.add_topic(name, partitions, full_config)
        state = TopicState(name, full_config)
        state.logs = [broker.open_log(name, p, full_config) for p in range(partitions)]
        broker.topics[name] = state


def use_topic(broker: Broker, name: str) -> TopicState:
    """``broker.topic(name)`` for a client about to use the topic (a producer's send, a
    Metadata request): an unknown topic is first created as Kafka's
    ``auto.create.topics.enable`` does, with ``num.partitions`` partitions and the default
    config. Raises UnknownTopicError when auto-creation is off, InvalidTopicError for a
    name that cannot be a topic."""
    if type(name) is str and name not in broker.topics and broker.settings.auto_create_topics_enable:
        broker.check_open()
        validate_topic_name(name)
        try:
            create_topic(broker, name, broker.settings.num_partitions)
            logger.info("created topic %r with %d partition(s) on first use (auto.create.topics.enable)",
                        name, broker.settings.num_partitions)  # fmt: skip
        except TopicExistsError:
            pass  # created by someone else in between: use it
    return broker.topic(name)


def create_partitions(broker: Broker, name: str, total: int) -> None:
    """Grow ``name`` to ``total`` partitions (Kafka never shrinks a topic)."""
    total = _check_partitions(total)
    with broker.lock:
        state = broker.topic(name)
        if total <= state.partitions:
            raise InvalidPartitionsError(
                f"topic {name!r} has {state.partitions} partitions; the new count must be larger, got {total}",
                topic=name,
            )
        broker.catalog.add_partitions(name, state.partitions, total)
        state.logs.extend(broker.open_log(name, p, state.config) for p in range(state.partitions, total))


def alter_config(broker: Broker, name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    with broker.lock:
        state = broker.topic(name)
        merged = topic_config({**state.config, **changes})
        broker.catalog.set_topic_config(name, merged)
        state.config = merged
        for log in state.logs:
            log.segment_bytes = merged["segment.bytes"]
        return merged


def delete_topic(broker: Broker, name: str) -> None:
    with broker.lock:
        state = broker.topic(name)
        # Out of the table first: a send from now on hears UnknownTopicError, and one that
        # raced into a log closed below finds the topic gone (broker/produce.py) and says so.
        del broker.topics[name]
        for log in state.logs:
            log.close()
        broker.catalog.remove_topic(name)
        crash_point("delete-topic.after-commit")
        broker.engine.delete_topic_files(name, state.logs)
        if any(log.pinned for log in state.logs):
            broker.deleted_logs[name] = state.logs


def _wait_for_readers_of_deleted(broker: Broker, name: str) -> None:
    """A topic created again right after its deletion waits (briefly) for replays and
    queries still reading the old files, whose folder it is about to reuse."""
    deadline = time.monotonic() + RECREATE_WAIT_S
    while any(log.pinned for log in broker.deleted_logs.get(name, ())) and time.monotonic() < deadline:
        time.sleep(0.02)


def describe_topics(broker: Broker) -> list[dict[str, Any]]:
    with broker.lock:
        broker.check_open()
        rows = []
        for name in sorted(broker.topics):
            state = broker.topics[name]
            rows.append(
                {
                    "name": name,
                    "partitions": state.partitions,
                    "records": sum(log.high_watermark - log.log_start_offset for log in state.logs),
                    "bytes": sum(log.size_bytes() for log in state.logs),
                    "config": dict(state.config),
                }
            )
        return rows
