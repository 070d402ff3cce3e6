"""The consumer protocol's payloads: what ``protocol_type="consumer"`` members put in the
opaque metadata of JoinGroup (a *subscription*) and the leader puts in SyncGroup (an
*assignment*).

The group coordinator treats these bytes as opaque, as Kafka's does; it reads them only
to know who owns which partition (for the rebalance history and for members it assigns
itself). Each payload is a big-endian int16 version followed by the fields of that
version of Kafka's ``ConsumerProtocolSubscription`` / ``ConsumerProtocolAssignment``
(kio's generated schemas). As in Kafka, a version newer than we know is read with the
newest schema we know and its extra trailing fields are ignored.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from kio.schema.consumer_protocol_assignment.v0.data import ConsumerProtocolAssignment as _AssignmentV0
from kio.schema.consumer_protocol_assignment.v0.data import TopicPartition as _AssignedV0
from kio.schema.consumer_protocol_subscription.v0.data import ConsumerProtocolSubscription as _SubscriptionV0
from kio.schema.consumer_protocol_subscription.v1.data import ConsumerProtocolSubscription as _SubscriptionV1
from kio.schema.consumer_protocol_subscription.v2.data import ConsumerProtocolSubscription as _SubscriptionV2
from kio.schema.consumer_protocol_subscription.v2.data import TopicPartition as _OwnedV2
from kio.schema.consumer_protocol_subscription.v3.data import ConsumerProtocolSubscription as _SubscriptionV3
from kio.schema.types import TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32

from streamlab.errors import StreamlabError
from streamlab.model.types import TopicPartition

__all__ = [
    "ConsumerProtocolError",
    "ConsumerSubscription",
    "decode_assignment",
    "decode_subscription",
    "encode_assignment",
    "encode_subscription",
]

_VERSION: Final = struct.Struct(">h")
_SUBSCRIPTIONS: Final = (_SubscriptionV0, _SubscriptionV1, _SubscriptionV2, _SubscriptionV3)
_read_subscription: Final = tuple(entity_reader(s) for s in _SUBSCRIPTIONS)
_read_assignment: Final = entity_reader(_AssignmentV0)  # every version so far has the same fields


class ConsumerProtocolError(StreamlabError, ValueError):
    """Bytes that are not a consumer-protocol subscription or assignment."""

    kafka_code = 42  # INVALID_REQUEST


@dataclass(frozen=True, slots=True)
class ConsumerSubscription:
    """A member's subscription as its JoinGroup metadata states it."""

    topics: tuple[str, ...]
    owned: tuple[TopicPartition, ...] = ()  # v1+: what the member holds now (cooperative protocols)
    generation: int = -1  # v2+: the generation it got ``owned`` in; -1 when not stated
    user_data: bytes | None = None


def _version(data: bytes, what: str) -> int:
    if len(data) < _VERSION.size:
        raise ConsumerProtocolError(f"consumer-protocol {what} of {len(data)} bytes has no version")
    (version,) = _VERSION.unpack_from(data)
    if version < 0:
        raise ConsumerProtocolError(f"consumer-protocol {what} has negative version {version}")
    return int(version)


def _read(reader: Any, data: bytes, what: str) -> Any:
    try:
        value, _ = reader(data, _VERSION.size)
    except Exception as exc:  # the native decoder's exception types are no contract
        raise ConsumerProtocolError(f"malformed consumer-protocol {what}: {type(exc).__name__}: {exc}") from exc
    return value


def _partitions(entries: Iterable[Any]) -> tuple[TopicPartition, ...]:
    return tuple(TopicPartition(str(e.topic), int(p)) for e in entries for p in e.partitions)


def _grouped(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(set(partitions)):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return by_topic


def _encode(version: int, schema: Any, value: Any) -> bytes:
    out = io.BytesIO()
    out.write(_VERSION.pack(version))
    entity_writer(schema)(out, value)
    return out.getvalue()


def decode_subscription(data: bytes) -> ConsumerSubscription:
    version = _version(data, "subscription")
    sub = _read(_read_subscription[min(version, len(_SUBSCRIPTIONS) - 1)], data, "subscription")
    try:  # a null array (length -1) decodes as None: malformed, like any other bad bytes
        return ConsumerSubscription(
            topics=tuple(str(t) for t in sub.topics),
            owned=_partitions(getattr(sub, "owned_partitions", ())),
            generation=int(getattr(sub, "generation_id", -1)),
            user_data=sub.user_data,
        )
    except (TypeError, ValueError) as exc:
        raise ConsumerProtocolError(f"malformed consumer-protocol subscription: {exc}") from None


def encode_subscription(topics: Iterable[str], owned: Iterable[TopicPartition] = (), generation: int = -1) -> bytes:
    """Version 2 (topics, owned partitions, generation), which every current client reads."""
    value = _SubscriptionV2(
        topics=tuple(topics),
        user_data=None,
        owned_partitions=tuple(
            _OwnedV2(topic=TopicName(t), partitions=tuple(i32(p) for p in ps)) for t, ps in _grouped(owned).items()
        ),
        generation_id=i32(generation),
    )
    return _encode(2, _SubscriptionV2, value)


def decode_assignment(data: bytes) -> tuple[TopicPartition, ...]:
    """The partitions an assignment gives; empty bytes are an empty assignment (Kafka's
    leader sends none for members it gives nothing)."""
    if not data:
        return ()
    _version(data, "assignment")
    try:  # a null array (length -1) decodes as None: malformed, like any other bad bytes
        return _partitions(_read(_read_assignment, data, "assignment").assigned_partitions)
    except (TypeError, ValueError) as exc:
        raise ConsumerProtocolError(f"malformed consumer-protocol assignment: {exc}") from None


def encode_assignment(partitions: Iterable[TopicPartition]) -> bytes:
    value = _AssignmentV0(
        assigned_partitions=tuple(
            _AssignedV0(topic=TopicName(t), partitions=tuple(i32(p) for p in ps))
            for t, ps in _grouped(partitions).items()
        ),
        user_data=None,
    )
    return _encode(0, _AssignmentV0, value)
