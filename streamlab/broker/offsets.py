"""Log offsets (earliest, latest, by time) and committed group offsets."""

from __future__ import annotations

from collections.abc import Mapping

from streamlab.broker.core import Broker
from streamlab.errors import InvalidOffsetError
from streamlab.model.types import MAX_OFFSET, OffsetAndMetadata, TopicPartition


def log_offsets(broker: Broker, topic: str) -> list[tuple[int, int, int]]:
    """(partition, log_start_offset, high_watermark) for each partition of ``topic``."""
    state = broker.topic(topic)
    return [(p, log.log_start_offset, log.high_watermark) for p, log in enumerate(state.logs)]


def offset_for_time(broker: Broker, topic: str, partition: int, timestamp_ms: int) -> int:
    """Earliest offset with a timestamp >= ``timestamp_ms``; the high watermark if none."""
    log = broker.log(topic, partition)
    found = log.offset_for_timestamp(timestamp_ms)
    return log.high_watermark if found is None else max(found, log.log_start_offset)


def commit(broker: Broker, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
    for tp, om in offsets.items():
        broker.log(tp.topic, tp.partition)  # unknown topic / partition -> clear error
        # Clients refuse negative offsets; Kafka's broker stores whatever an OffsetCommit
        # carries (-1 reads back as "no offset"), but never anything its int64 cannot hold.
        if isinstance(om.offset, bool) or not isinstance(om.offset, int) or not -(2**63) <= om.offset <= MAX_OFFSET:
            raise InvalidOffsetError(
                f"offset for {tp} must be an integer within Kafka's int64, got {om.offset!r}",
                topic=tp.topic,
                partition=tp.partition,
            )
    broker.catalog.commit_offsets(
        group,
        [(tp.topic, tp.partition, om.offset, om.metadata) for tp, om in offsets.items()],
        epochs={(tp.topic, tp.partition): om.leader_epoch for tp, om in offsets.items() if om.leader_epoch is not None},
    )


def committed(broker: Broker, group: str) -> dict[TopicPartition, OffsetAndMetadata]:
    epochs = broker.catalog.committed_epochs(group)
    return {
        TopicPartition(t, p): OffsetAndMetadata(o, m, epochs.get((t, p)))
        for (t, p), (o, m) in broker.catalog.committed(group).items()
    }
