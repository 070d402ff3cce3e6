"""The share consumer: a member of a share group (KIP-932, "queues for Kafka").

Every member of a share group reads every partition of its topics; the broker hands each
record to one member at a time under an acquisition lock of ``lock_ms``. Each record a
poll returns is acknowledged as ``"accept"`` (done), ``"release"`` (give it back for
another delivery) or ``"reject"`` (unprocessable: archived, and copied to the group's
dead-letter topic when it has one). A record whose lock runs out comes back by itself;
after ``delivery_count_limit`` deliveries it is archived (and dead-lettered) instead.

Acknowledgement modes (``acknowledgement_mode``, Kafka's ``share.acknowledgement.mode``):

``"implicit"`` (default)
    :meth:`acknowledge` records as you go, or don't: at the next :meth:`poll` or
    :meth:`commit`, every record delivered and not acknowledged is *accepted*. (Kafka's
    implicit mode refuses explicit acknowledgements; here they are honoured, so one
    consumer can accept most records implicitly and release or reject a few.)
``"explicit"``
    every delivered record must be acknowledged before the next :meth:`poll`, which
    raises otherwise; :meth:`commit` sends exactly what was acknowledged.

Acknowledgements are sent by :meth:`poll` and :meth:`commit`. :meth:`close` sends the
acknowledgements made so far and *releases* every other record it holds (the delivery
cut short still counts, as in Kafka). In implicit mode, call :meth:`commit` before
:meth:`close` to accept the last batch.

:meth:`poll` returns plain :class:`~streamlab.model.types.Record` objects;
:meth:`delivery_count` tells how many times a held record has been delivered.

A share consumer has no positions, so it cannot seek: to read a topic again, use a
classic :class:`~streamlab.client.consumer.Consumer` or ``lab.replay``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from streamlab.broker import Broker
from streamlab.broker.share_group import DEFAULT_SESSION_TIMEOUT_MS, ShareGroup
from streamlab.broker.share_registry import join_share_group
from streamlab.client.decode import to_records
from streamlab.client.polling import fetch_until
from streamlab.errors import InvalidRecordStateError, ShareGroupError, UnknownMemberError
from streamlab.model.share import AckType
from streamlab.model.types import Record, TopicPartition
from streamlab.port.share_base import ShareConsumerBase, ShareConsumerConfig, positive

# Called once per partition whose acknowledgements were sent: (partition, offsets, error).
AcknowledgementCallback = Callable[[TopicPartition, set[int], InvalidRecordStateError | None], None]


class ShareConsumer(ShareConsumerBase):
    """A member of share group ``group`` reading ``topics``. Use as a context manager, or
    call :meth:`close`. See the module documentation for acknowledgement modes. Like
    Kafka's consumers, one share consumer belongs to one thread: start one per worker."""

    def __init__(
        self,
        broker: Broker,
        topics: Iterable[str] | str,
        config: ShareConsumerConfig,
        *,
        session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
        on_acknowledged: AcknowledgementCallback | None = None,
    ) -> None:
        super().__init__(topics, config)
        self._broker = broker
        self._session_timeout_ms = positive("session_timeout_ms", session_timeout_ms)
        self._on_acknowledged = on_acknowledged
        # Delivered and not yet sent back, per partition: offset -> acknowledgement (None: none yet),
        # and each such record's delivery count.
        self._delivered: dict[TopicPartition, dict[int, AckType | None]] = {}
        self._counts: dict[tuple[TopicPartition, int], int] = {}
        self._group: ShareGroup
        self.member_id: str
        self._join()

    def _join(self) -> None:
        self._group, self.member_id = join_share_group(
            self._broker, self.group, self.topics, self._config.group_config,
            client_id=self.client_id, session_timeout_ms=self._session_timeout_ms,
        )  # fmt: skip

    # reading ------------------------------------------------------------------------------
    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, each now locked to this consumer for ``lock_ms``;
        waits at most ``timeout`` seconds for the first. Sends pending acknowledgements first."""
        limit = self._poll_limit(max_records)
        if self._mode == "explicit" and (waiting := self._unacknowledged()):
            raise ShareGroupError(
                f"acknowledgement_mode='explicit': acknowledge the {waiting} records of the previous poll "
                "before polling again"
            )
        self._send()
        deadline = time.monotonic() + max(timeout, 0)
        return fetch_until(self._broker, deadline, lambda: self._fetch(limit), self._check_open, step=0.05)

    def _fetch(self, limit: int) -> list[Record]:
        try:
            deliveries = self._group.fetch(self.member_id, limit, self.lock_ms)
        except UnknownMemberError:  # our session expired: what we held is gone; join again
            self._delivered.clear()
            self._counts.clear()
            self._join()
            deliveries = self._group.fetch(self.member_id, limit, self.lock_ms)
        out: list[Record] = []
        for d in deliveries:
            tp = TopicPartition(d.topic, d.partition)
            held = self._delivered.setdefault(tp, {})
            for offset, count in d.delivery_counts.items():
                held[offset] = None
                self._counts[tp, offset] = count
            out.extend(to_records(d.topic, d.partition, d.table))
        return out

    def delivery_count(self, record: Record) -> int | None:
        """How many times ``record`` has been delivered (1 the first time) while this consumer
        holds it; None once its acknowledgement has been sent (or if it was never delivered here)."""
        return self._counts.get((record.topic_partition, record.offset))

    # acknowledging --------------------------------------------------------------------------
    def acknowledge(self, records: Record | Iterable[Record], type: AckType = "accept") -> None:
        """Mark delivered records ``"accept"``, ``"release"`` or ``"reject"``; sent by the
        next :meth:`poll` or :meth:`commit`."""
        chosen = self._acknowledging(records, type)
        for rec in chosen:
            held = self._delivered.get(rec.topic_partition, {})
            if rec.offset not in held or held[rec.offset] is not None:
                why = "was acknowledged already" if rec.offset in held else (
                    "is not held by this consumer (never delivered to it, or already sent back by poll() or commit())"
                )  # fmt: skip
                raise InvalidRecordStateError(
                    f"{rec.topic_partition} offset {rec.offset} {why}",
                    topic=rec.topic, partition=rec.partition, offsets=[rec.offset],
                )  # fmt: skip
        for rec in chosen:
            self._delivered[rec.topic_partition][rec.offset] = type

    def commit(self) -> dict[TopicPartition, InvalidRecordStateError]:
        """Send the acknowledgements made so far (in implicit mode, accepting every other
        delivered record too). Returns the partitions where the broker refused some: their
        locks had expired, so those records went back to the group."""
        self._check_open()
        return self._send()

    def renew(self, records: Record | Iterable[Record]) -> None:
        """Extend the locks on ``records`` to ``lock_ms`` from now (for slow work)."""
        self._check_open()
        by_tp: dict[TopicPartition, list[int]] = {}
        for rec in [records] if isinstance(records, Record) else records:
            by_tp.setdefault(rec.topic_partition, []).append(rec.offset)
        for tp, offsets in by_tp.items():
            if refused := self._group.renew(self.member_id, tp, offsets, self.lock_ms):
                raise InvalidRecordStateError(
                    f"cannot renew {tp} offsets {sorted(refused)}: this consumer does not hold them (lock expired?)",
                    topic=tp.topic, partition=tp.partition, offsets=refused,
                )  # fmt: skip

    def _unacknowledged(self) -> int:
        return sum(1 for held in self._delivered.values() for kind in held.values() if kind is None)

    def _send(self, *, implicit: bool = True) -> dict[TopicPartition, InvalidRecordStateError]:
        errors: dict[TopicPartition, InvalidRecordStateError] = {}
        for tp, held in list(self._delivered.items()):
            batches: dict[AckType, list[int]] = {}
            for offset, kind in held.items():
                if kind is None and implicit and self._mode == "implicit":
                    kind = "accept"
                if kind is not None:
                    batches.setdefault(kind, []).append(offset)
            refused: list[int] = []
            for kind, offsets in batches.items():
                refused += self._group.acknowledge(self.member_id, tp, offsets, kind)
                for offset in offsets:
                    del held[offset]
                    self._counts.pop((tp, offset), None)
            if not held:
                del self._delivered[tp]
            error = None
            if refused:
                error = errors[tp] = InvalidRecordStateError(
                    f"{tp} offsets {sorted(refused)} were not acknowledged: this consumer no longer held them "
                    "(lock expired or session ended), so the group may deliver them again",
                    topic=tp.topic, partition=tp.partition, offsets=refused,
                )  # fmt: skip
            if self._on_acknowledged is not None and batches:
                sent = {o for offsets in batches.values() for o in offsets}
                self._on_acknowledged(tp, sent, error)
        return errors

    # lifecycle ---------------------------------------------------------------------------------------
    def _check_backend_open(self) -> None:
        self._broker.check_open()

    def _leave(self) -> None:
        """Send the acknowledgements made so far, release every other record held, leave."""
        if self._broker.closed:
            return
        try:
            self._send(implicit=False)
        finally:
            self._delivered.clear()
            self._counts.clear()
            self._group.leave(self.member_id)

    def _die(self) -> None:
        """Stop without a word (no acknowledgements, no release, no leave), like a crashed
        process: the records it holds come back when their locks expire."""
        self._closed = True

    def held(self) -> dict[TopicPartition, list[int]]:
        """Offsets delivered to this consumer and not yet sent back, per partition."""
        return {tp: sorted(held) for tp, held in self._delivered.items()}

    def __repr__(self) -> str:
        return f"<ShareConsumer group={self.group!r} member={self.member_id!r} topics={self.topics}>"
