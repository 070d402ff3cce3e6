"""``kafka://``: the Lab API on any Kafka cluster, built on confluent-kafka (librdkafka).

>>> lab = streamlab.connect("kafka://127.0.0.1:9092")             # doctest: +SKIP

``streamlab.connect("kafka://host:port[,host:port...][?librdkafka.option=value&...]")``
returns a :class:`~streamlab.kafka.backend.KafkaBackend`: the same methods, arguments, return
types and exceptions as the embedded :class:`~streamlab.Lab`, so one notebook runs
against the embedded broker, ``streamlab serve``, Apache Kafka or Redpanda. Query
parameters go to every librdkafka client as they are (``security.protocol``, ``sasl.*``).

Records keep what they were: a producer adds the headers ``streamlab.key.format`` and
``streamlab.value.format`` (the ASCII digit of the :mod:`streamlab.model.serde` format)
and a consumer turns the bytes back into str, JSON or bytes with them and hides them.
Records from other clients have no such headers and come back as bytes.

This module holds what the Kafka clients share: the target parser, the base client
configuration and the map from librdkafka errors to streamlab's exception tree.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from streamlab.errors import (
    KAFKA_ERROR_CODES,
    ClosedError,
    ConfigError,
    CorruptRecordError,
    FencedInstanceError,
    GroupNotEmptyError,
    GroupTypeError,
    IllegalGenerationError,
    InconsistentProtocolError,
    InvalidPartitionsError,
    InvalidRecordStateError,
    InvalidTopicError,
    OffsetOutOfRangeError,
    OperationTimeoutError,
    RebalanceInProgressError,
    RecordTooLargeError,
    SerializationError,
    StreamlabError,
    TopicExistsError,
    UnknownMemberError,
    UnknownPartitionError,
    UnknownTopicError,
    UnsupportedOperationError,
)

if TYPE_CHECKING:
    from streamlab.kafka.backend import KafkaBackend
    from streamlab.kafka.consumer import KafkaConsumer
    from streamlab.kafka.mock_cluster import MockCluster
    from streamlab.kafka.producer import KafkaProducer

SCHEME = "kafka://"

log = logging.getLogger("streamlab.kafka")
log.addHandler(logging.NullHandler())  # librdkafka's reconnect chatter stays out of notebooks unless asked for


def parse_target(target: str) -> tuple[str, dict[str, str]]:
    """``kafka://h1:p1,h2:p2?opt=v`` as (``"h1:p1,h2:p2"``, ``{"opt": "v"}``)."""
    if not target.startswith(SCHEME):
        raise ConfigError(f"a Kafka target starts with {SCHEME!r}, got {target!r}")
    parts = urlsplit(target)
    bootstrap = target[len(SCHEME) :].split("?", 1)[0].strip("/")
    brokers = [b.strip() for b in bootstrap.split(",") if b.strip()]
    if not brokers or any(":" not in b or not b.rsplit(":", 1)[1].isdigit() for b in brokers):
        raise ConfigError(f"expected kafka://host:port[,host:port...], got {target!r}")
    return ",".join(brokers), dict(parse_qsl(parts.query, keep_blank_values=True))


def client_config(bootstrap: str, extra: Mapping[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    """librdkafka configuration shared by every client of a lab.

    Topics are never created by accident (``allow.auto.create.topics=false``: an unknown
    topic is an error, as on the embedded broker) and librdkafka's log lines go to the
    ``streamlab.kafka`` logger instead of stderr.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "allow.auto.create.topics": False,
        "logger": log,
        "error_cb": _log_error,
    }
    config.update(settings)
    config.update(extra or {})  # librdkafka's own names, passed through as they are
    return config


def _log_error(error: Any) -> None:
    """librdkafka's client-wide errors: it retries by itself, operations raise when it gives up."""
    log.log(logging.ERROR if error.fatal() else logging.INFO, "librdkafka: %s", error)


# Kafka protocol error codes (and librdkafka's local, negative ones) -> streamlab errors.
_ERRORS: dict[int, type[StreamlabError]] = {
    1: OffsetOutOfRangeError,  # OFFSET_OUT_OF_RANGE
    2: CorruptRecordError,  # CORRUPT_MESSAGE
    3: UnknownTopicError,  # UNKNOWN_TOPIC_OR_PARTITION
    7: OperationTimeoutError,  # REQUEST_TIMED_OUT
    10: RecordTooLargeError,  # MESSAGE_TOO_LARGE
    17: InvalidTopicError,  # INVALID_TOPIC_EXCEPTION
    22: IllegalGenerationError,
    23: InconsistentProtocolError,
    25: UnknownMemberError,
    27: RebalanceInProgressError,
    35: UnsupportedOperationError,  # UNSUPPORTED_VERSION
    36: TopicExistsError,
    37: InvalidPartitionsError,
    38: ConfigError,  # INVALID_REPLICATION_FACTOR
    40: ConfigError,  # INVALID_CONFIG
    68: GroupNotEmptyError,
    69: GroupTypeError,  # GROUP_ID_NOT_FOUND: a share group's name taken by a classic group, or the reverse
    82: FencedInstanceError,
    87: SerializationError,  # INVALID_RECORD
    100: UnknownTopicError,  # UNKNOWN_TOPIC_ID
    121: InvalidRecordStateError,  # INVALID_RECORD_STATE (share groups)
    -140: OffsetOutOfRangeError,  # _AUTO_OFFSET_RESET (auto_offset_reset="none")
    -165: UnsupportedOperationError,  # _UNSUPPORTED_FEATURE
    -185: OperationTimeoutError,  # _TIMED_OUT
    -187: OperationTimeoutError,  # _ALL_BROKERS_DOWN
    -195: OperationTimeoutError,  # _TRANSPORT (no broker reachable)
    -186: ConfigError,  # _INVALID_ARG
    -188: UnknownTopicError,  # _UNKNOWN_TOPIC
    -190: UnknownPartitionError,  # _UNKNOWN_PARTITION
    -192: OperationTimeoutError,  # _MSG_TIMED_OUT
    -197: ClosedError,  # _DESTROY
    -199: CorruptRecordError,  # _BAD_MSG
}


def _by_code() -> dict[int, type[StreamlabError]]:
    """Every code the exception tree names (the first, most general class of a code),
    then the choices above: one tree, so a code the server answers is never unmapped."""
    found: dict[int, type[StreamlabError]] = {}
    for cls, code in KAFKA_ERROR_CODES.items():
        if code > 0:
            found.setdefault(code, cls)
    return {**found, **_ERRORS}


_BY_CODE = _by_code()


def translate(
    error: Any, *, topic: str | None = None, partition: int | None = None, context: str = ""
) -> StreamlabError:
    """A streamlab exception for a ``KafkaError`` or ``KafkaException`` (or anything else)."""
    kafka_error = error.args[0] if error.__class__.__name__ == "KafkaException" and error.args else error
    code = kafka_error.code() if hasattr(kafka_error, "code") else None
    text = kafka_error.str() if hasattr(kafka_error, "str") else str(kafka_error)
    cls = _BY_CODE.get(code, StreamlabError) if code is not None else StreamlabError
    if cls is UnknownTopicError and partition is not None:
        cls = UnknownPartitionError
    message = f"{context}: {text}" if context else text
    return cls(message, topic=topic, partition=partition)


def __getattr__(name: str) -> Any:  # lazy: importing streamlab.kafka must not need confluent-kafka yet
    if name == "KafkaBackend":
        from streamlab.kafka.backend import KafkaBackend

        return KafkaBackend
    if name == "KafkaProducer":
        from streamlab.kafka.producer import KafkaProducer

        return KafkaProducer
    if name == "KafkaConsumer":
        from streamlab.kafka.consumer import KafkaConsumer

        return KafkaConsumer
    if name == "MockCluster":
        from streamlab.kafka.mock_cluster import MockCluster

        return MockCluster
    raise AttributeError(f"module 'streamlab.kafka' has no attribute {name!r}")


__all__ = [
    "KafkaBackend",
    "KafkaConsumer",
    "KafkaProducer",
    "MockCluster",
    "client_config",
    "parse_target",
    "translate",
]
