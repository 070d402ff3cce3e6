"""``lab.share_consumer(...)`` on ``kafka://``: share groups through librdkafka's share consumer.

The same API as the embedded :class:`~streamlab.client.share_consumer.ShareConsumer`,
built on confluent-kafka's ``ShareConsumer`` (KIP-932), so it works against
``streamlab serve``, Apache Kafka 4.1+ with share groups enabled, and librdkafka's mock
cluster. librdkafka runs in explicit acknowledgement mode underneath; streamlab's
``"implicit"`` mode accepts every delivered record not acknowledged otherwise at the next
:meth:`poll` or :meth:`commit`, as the embedded consumer does.

librdkafka may deliver more records at once than a poll's ``max_records`` (the broker hands
out up to ``max_poll_records`` per fetch); the rest wait here for the next polls, under
acquisition locks that keep running. A waiting record whose lock has run out is no longer
this member's (another member may have it, and have acknowledged it), so a poll never
returns it: it is released and dropped, and the group delivers it again.

Share-group settings are group configs on a Kafka cluster, not consumer settings: the
consumer sets ``share.record.lock.duration.ms`` (``lock_ms``) and
``share.auto.offset.reset`` (and ``share.delivery.count.limit`` and
``errors.deadletterqueue.topic.name`` when they differ from the defaults) with
IncrementalAlterConfigs before joining. On librdkafka's mock cluster, which has no admin
APIs, they are set through the mock's own controls and apply to all its share groups.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import confluent_kafka as ck
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from streamlab.errors import InvalidRecordStateError, ShareGroupError, ShareOperationError
from streamlab.kafka import client_config, translate
from streamlab.kafka import mock_cluster as mocks
from streamlab.kafka.messages import check_message, to_record
from streamlab.model.share import AckType, ShareGroupConfig
from streamlab.model.types import Record, TopicPartition
from streamlab.port.share_base import ShareConsumerBase, ShareConsumerConfig

if TYPE_CHECKING:
    from streamlab.kafka.backend import KafkaBackend

_ACK = {"accept": ck.AcknowledgeType.ACCEPT, "release": ck.AcknowledgeType.RELEASE,
        "reject": ck.AcknowledgeType.REJECT}  # fmt: skip
INVALID_RECORD_STATE = 121


def configure_share_group(lab: KafkaBackend, group: str, config: ShareGroupConfig, lock_ms: int) -> None:
    """Give ``group`` the settings a share consumer asked for (see the module doc)."""
    cluster = mocks.find(lab.bootstrap)
    if cluster is not None:
        cluster.share_group_settings(lock_ms=lock_ms, delivery_count_limit=config.delivery_count_limit,
                                     auto_offset_reset=config.auto_offset_reset)  # fmt: skip
        return
    settings = {"share.record.lock.duration.ms": str(lock_ms), "share.auto.offset.reset": config.auto_offset_reset}
    if config.delivery_count_limit != ShareGroupConfig().delivery_count_limit:
        settings["share.delivery.count.limit"] = str(config.delivery_count_limit)
    if config.dead_letter_topic is not None:
        settings["errors.deadletterqueue.topic.name"] = config.dead_letter_topic
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in settings.items()]
    resource = ConfigResource(ConfigResource.Type.GROUP, group, incremental_configs=entries)
    for future in lab._admin.incremental_alter_configs([resource]).values():
        try:
            future.result(timeout=lab.timeout)
        except ck.KafkaException as exc:
            raise translate(exc.args[0], context=f"setting share group {group!r} configs {settings}") from exc


class KafkaShareConsumer(ShareConsumerBase):
    """A member of share group ``group`` on a Kafka cluster. See the module documentation."""

    def __init__(
        self,
        lab: KafkaBackend,
        topics: Iterable[str] | str,
        config: ShareConsumerConfig,
        *,
        kafka_config: dict[str, Any] | None = None,
    ) -> None:
        lab._check_open()
        super().__init__(topics, config)
        self._lab = lab
        for topic in self.topics:
            lab._topic_info(topic)  # an unknown topic is an error here too
        configure_share_group(lab, self.group, config.group_config, self.lock_ms)
        settings = {"group.id": self.group, "client.id": self.client_id, "share.acknowledgement.mode": "explicit",
                    "max.poll.records": self._max_poll_records}  # fmt: skip
        options = client_config(lab.bootstrap, {**lab.client_options, **(kafka_config or {})}, **settings)
        options.pop("allow.auto.create.topics", None)  # librdkafka's share consumer refuses the setting
        self._consumer = ck.ShareConsumer(options)
        self._errors: dict[TopicPartition, InvalidRecordStateError] = {}
        self._consumer.set_acknowledgement_commit_callback(self._acknowledged)
        # Delivered and not yet sent back: (partition, offset) -> [message, acknowledgement or None]
        self._delivered: dict[tuple[TopicPartition, int], list[Any]] = {}
        # Delivered by librdkafka beyond a poll's max_records, each with the monotonic time
        # by which its lock has surely run out.
        self._buffer: list[tuple[Any, float]] = []
        self._dropped: set[tuple[TopicPartition, int]] = set()  # released by _drop_expired, reply awaited
        self._consumer.subscribe(self.topics)

    # reading ------------------------------------------------------------------------------
    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, each locked to this consumer for the group's lock
        duration; waits at most ``timeout`` seconds. Sends pending acknowledgements first."""
        limit = self._poll_limit(max_records)
        waiting = sum(1 for _, kind in self._delivered.values() if kind is None)
        if self._mode == "explicit" and waiting > len(self._buffer):
            raise ShareGroupError(
                f"acknowledgement_mode='explicit': acknowledge the {waiting} records of the previous poll "
                "before polling again"
            )
        self._accept_the_rest()
        self._drop_expired()
        deadline = time.monotonic() + max(timeout, 0)
        while not self._buffer:
            left = deadline - time.monotonic()
            messages: Any = self._consumer.poll(max(left, 0)) or []
            # The broker took the locks before librdkafka handed the records over.
            lock_end = time.monotonic() + self.lock_ms / 1000
            for msg in messages:
                if check_message(msg):
                    self._buffer.append((msg, lock_end))
                    self._delivered[TopicPartition(str(msg.topic()), int(msg.partition())), int(msg.offset())] = [
                        msg,
                        None,
                    ]
            if left <= 0:
                break
        out, self._buffer = self._buffer[:limit], self._buffer[limit:]
        return [to_record(msg) for msg, _ in out]

    def _drop_expired(self) -> None:
        """Release and forget the waiting records whose acquisition lock has run out.

        The acknowledgements made so far are sent first, and the releases alone after
        them, so the broker's refusal of the releases (the records are not held any more)
        is told apart from a refusal of the application's acknowledgements."""
        now = time.monotonic()
        expired = [msg for msg, lock_end in self._buffer if lock_end <= now]
        if not expired:
            return
        self._buffer = [(msg, lock_end) for msg, lock_end in self._buffer if lock_end > now]
        self._commit_sync()
        for msg in expired:
            key = TopicPartition(str(msg.topic()), int(msg.partition())), int(msg.offset())
            self._consumer.acknowledge(msg, ck.AcknowledgeType.RELEASE)
            self._dropped.add(key)
            self._delivered.pop(key, None)
        self._commit_sync()

    def delivery_count(self, record: Record) -> int | None:
        """How many times ``record`` has been delivered while this consumer holds it."""
        held = self._delivered.get((record.topic_partition, record.offset))
        return None if held is None else int(held[0].delivery_count())

    # acknowledging --------------------------------------------------------------------------
    def acknowledge(self, records: Record | Iterable[Record], type: AckType = "accept") -> None:
        """Mark delivered records ``"accept"``, ``"release"`` or ``"reject"``; sent by the
        next :meth:`poll` or :meth:`commit`."""
        chosen = self._acknowledging(records, type)
        for rec in chosen:
            held = self._delivered.get((rec.topic_partition, rec.offset))
            if held is None or held[1] is not None:
                why = "was acknowledged already" if held else "is not held by this consumer"
                raise InvalidRecordStateError(
                    f"{rec.topic_partition} offset {rec.offset} {why}",
                    topic=rec.topic, partition=rec.partition, offsets=[rec.offset],
                )  # fmt: skip
        for rec in chosen:
            held = self._delivered[rec.topic_partition, rec.offset]
            self._consumer.acknowledge(held[0], _ACK[type])
            held[1] = type

    def _accept_the_rest(self) -> None:
        """Implicit mode: accept what was delivered (and returned) and not acknowledged."""
        buffered = {id(msg) for msg, _ in self._buffer}
        for key, held in list(self._delivered.items()):
            if held[1] is None and id(held[0]) not in buffered and self._mode == "implicit":
                self._consumer.acknowledge(held[0], ck.AcknowledgeType.ACCEPT)
                held[1] = "accept"
            if held[1] is not None:
                del self._delivered[key]

    def _acknowledged(self, offsets: Any, error: Any) -> None:
        for tp, all_sent in (offsets or {}).items():
            ours = TopicPartition(tp.topic, tp.partition)
            dropped = {o for o in all_sent if (ours, o) in self._dropped}
            self._dropped -= {(ours, o) for o in dropped}
            sent = set(all_sent) - dropped
            if error is None or not sent:
                continue
            self._errors[ours] = InvalidRecordStateError(
                f"{ours} offsets {sorted(sent)} were not acknowledged: {error}",
                topic=tp.topic, partition=tp.partition, offsets=sorted(sent),
            )  # fmt: skip

    def commit(self) -> dict[TopicPartition, InvalidRecordStateError]:
        """Send the acknowledgements made so far (in implicit mode, accepting every other
        delivered record too); returns the partitions where the broker refused some."""
        self._check_open()
        self._accept_the_rest()
        self._commit_sync()
        errors, self._errors = self._errors, {}
        return errors

    def _commit_sync(self) -> None:
        """Send the pending acknowledgements and wait for the broker: its refusals reach
        :meth:`_acknowledged` before this returns."""
        try:
            self._consumer.commit_sync(self._lab.timeout)
        except ck.KafkaException as exc:
            if exc.args[0].code() != INVALID_RECORD_STATE:
                raise translate(exc.args[0], context="committing share acknowledgements") from exc

    def renew(self, records: Record | Iterable[Record]) -> NoReturn:
        raise ShareOperationError("lock renewal is not offered by librdkafka's share consumer; use the embedded one")

    def held(self) -> dict[TopicPartition, list[int]]:
        """Offsets delivered to this consumer and not yet sent back, per partition."""
        out: dict[TopicPartition, list[int]] = {}
        for tp, offset in sorted(self._delivered):
            out.setdefault(tp, []).append(offset)
        return out

    # lifecycle ---------------------------------------------------------------------------------------
    def _check_backend_open(self) -> None:
        self._lab._check_open()

    def _leave(self) -> None:
        """Send the acknowledgements made so far and leave: the group releases the rest."""
        self._delivered.clear()
        self._buffer.clear()
        self._consumer.close()

    def __repr__(self) -> str:
        return f"<KafkaShareConsumer group={self.group!r} topics={self.topics}>"
