"""Reading confluent-kafka messages the way streamlab does, shared by the ``kafka://``
consumer, the replay reader and the share consumer.

Decoding a ``Message`` into a :class:`~streamlab.model.types.Record` (formats travel in
headers), polling a batch without waiting out the whole timeout, telling errors a reader
must hear about from librdkafka's noise, and converting partitions to confluent's type.
Separate from :mod:`.consumer` because the other readers need these but not the consumer.
"""

from __future__ import annotations

from typing import Any

import confluent_kafka as ck

from streamlab.kafka import log, translate
from streamlab.model.serde import (
    FMT_BYTES,
    FMT_NULL,
    KEY_FORMAT_HEADER,
    VALUE_FORMAT_HEADER,
    decode,
    decode_value,
    header_format,
)
from streamlab.model.types import OffsetAndMetadata, Record, TopicPartition

__all__ = ["check_message", "ck_partition", "commit_entry", "decode_message", "next_batch", "to_record"]

_QUIET = {ck.KafkaError._PARTITION_EOF}  # not an error for a notebook


def decode_message(msg: Any) -> tuple[bytes | None, int, bytes | None, int, list[tuple[str, bytes]]]:
    """(key, key format, value, value format, other headers) of a confluent ``Message``."""
    key, value = msg.key(), msg.value()
    key_fmt = FMT_NULL if key is None else FMT_BYTES
    value_fmt = FMT_NULL if value is None else FMT_BYTES
    headers: list[tuple[str, bytes]] = []
    for name, data in msg.headers() or ():
        if name == KEY_FORMAT_HEADER:
            key_fmt = (header_format(data) or FMT_BYTES) if key is not None else FMT_NULL
        elif name == VALUE_FORMAT_HEADER:
            value_fmt = (header_format(data) or FMT_BYTES) if value is not None else FMT_NULL
        else:
            headers.append((name, data))
    return key, key_fmt, value, value_fmt, headers


def to_record(msg: Any) -> Record:
    key, key_fmt, value, value_fmt, headers = decode_message(msg)
    return Record(
        msg.topic(),
        msg.partition(),
        msg.offset(),
        msg.timestamp()[1],
        decode(key, key_fmt),
        decode_value(value, value_fmt),
        dict(headers),
    )


def next_batch(consumer: Any, timeout: float, limit: int, linger: float = 0.02) -> list[Any]:
    """Up to ``limit`` messages, waiting at most ``timeout`` for the first one, then taking
    what follows within ``linger`` seconds of the previous one.

    (``Consumer.consume(n, timeout)`` waits the whole timeout unless ``n`` arrive; and a
    broker may answer a fetch with one batch per partition, so a short linger collects
    the batches already stored instead of returning one per poll.)
    """
    first = consumer.poll(max(timeout, 0))
    if first is None:
        return []
    out = [first]
    while len(out) < limit:
        more = consumer.consume(limit - len(out), 0)
        if not more:
            following = consumer.poll(linger)
            if following is None:
                break
            more = [following]
        out.extend(more)
    return out


def check_message(msg: Any) -> bool:
    """True for a record; raises for an error a reader must hear about, False for noise."""
    error = msg.error()
    if error is None:
        return True
    if error.code() in _QUIET:
        return False
    if error.retriable() and error.code() != ck.KafkaError._AUTO_OFFSET_RESET:
        log.info("consumer: %s", error)
        return False
    raise translate(error, topic=msg.topic(), partition=msg.partition())


def commit_entry(tp: TopicPartition, om: OffsetAndMetadata) -> ck.TopicPartition:
    if om.metadata:  # confluent-kafka refuses metadata=None
        return ck.TopicPartition(tp.topic, tp.partition, om.offset, om.metadata)
    return ck.TopicPartition(tp.topic, tp.partition, om.offset)


def ck_partition(tp: TopicPartition, offset: int | None = None) -> ck.TopicPartition:
    if offset is None:
        return ck.TopicPartition(tp.topic, tp.partition)
    return ck.TopicPartition(tp.topic, tp.partition, offset)
