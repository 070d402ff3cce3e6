"""What every (classic or KIP-848) consumer does the same way, whichever backend reads the
records: its configuration, checked once; positions (the next offset to read, per
assigned partition) and where they start; seeking; commit bookkeeping; the poll loop's
checks and ``poll_frame``.

:class:`~streamlab.client.consumer.Consumer` (embedded) and
:class:`~streamlab.kafka.consumer.KafkaConsumer` (``kafka://``) build on
:class:`ConsumerBase` and implement only what touches their engine: the log bounds and
committed offsets they look up, how records are read and commits stored, and how a group
hands out partitions.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from streamlab.api import IsolationLevel
from streamlab.errors import ConfigError, NoGroupError, OffsetOutOfRangeError, StreamlabError
from streamlab.model.names import validate_group_id
from streamlab.model.timeparse import to_ms
from streamlab.model.types import OffsetAndMetadata, Record, TopicPartition, check_offset, committable
from streamlab.port.consumer_rules import warn_offset_reset
from streamlab.port.lifecycle import ClientLifecycle
from streamlab.port.record_decode import RecordDecoder
from streamlab.port.record_frames import polled_frame

if TYPE_CHECKING:
    import pandas as pd

OffsetReset = Literal["earliest", "latest", "none"]
GroupProtocol = Literal["classic", "consumer"]
Callback = Callable[[list[TopicPartition]], None]
# The assignors a classic member offers unless told otherwise (Kafka's default list).
CLASSIC_DEFAULT_ASSIGNORS = ("range", "cooperative-sticky")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConsumerConfig:
    """A consumer's settings, with the names ``lab.consumer(...)`` takes (Kafka's, with
    underscores); checked when made, so both backends refuse the same values the same way."""

    group: str | None = None
    auto_offset_reset: OffsetReset = "latest"
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5000
    max_poll_records: int = 500
    client_id: str = "streamlab-consumer"
    on_assign: Callback | None = None
    on_revoke: Callback | None = None
    on_lost: Callback | None = None
    assignor: str | Sequence[str] = CLASSIC_DEFAULT_ASSIGNORS
    session_timeout_ms: int = 45_000
    max_poll_interval_ms: int = 300_000
    group_instance_id: str | None = None
    isolation_level: IsolationLevel = "read_uncommitted"
    group_protocol: GroupProtocol = "classic"

    def __post_init__(self) -> None:
        if self.auto_offset_reset not in ("earliest", "latest", "none"):
            raise ConfigError(
                f"auto_offset_reset must be 'earliest', 'latest' or 'none', got {self.auto_offset_reset!r}"
            )
        if self.isolation_level not in ("read_committed", "read_uncommitted"):
            raise ConfigError(
                f"isolation_level must be 'read_committed' or 'read_uncommitted', got {self.isolation_level!r}"
            )
        if self.group_protocol not in ("classic", "consumer"):
            raise ConfigError(f"group_protocol must be 'classic' or 'consumer', got {self.group_protocol!r}")
        if self.group is not None:
            validate_group_id(self.group)
        validate_group_id(self.client_id, what="client_id", empty_ok=True)  # stored with the group's history

    @property
    def assignors(self) -> tuple[str, ...]:
        return (self.assignor,) if isinstance(self.assignor, str) else tuple(self.assignor)

    def remote_assignor(self, known: Collection[str]) -> str | None:
        """The server-side assignor a ``group_protocol="consumer"`` member asks for (Kafka's
        ``group.remote.assignor``), one of ``known``; None (the classic default left as it
        is) lets the group choose."""
        if self.assignors == CLASSIC_DEFAULT_ASSIGNORS:
            return None
        if not isinstance(self.assignor, str) or self.assignor not in known:
            raise ConfigError(
                f"with group_protocol='consumer' the broker assigns: assignor must be one of "
                f"{sorted(known)}, got {self.assignor!r}"
            )
        return self.assignor


def split_consumer_options(options: dict[str, Any]) -> tuple[ConsumerConfig, dict[str, Any]]:
    """``lab.consumer(...)``'s keyword arguments as a :class:`ConsumerConfig` and the rest
    (the subscription, the decoder, a backend's own settings) for the consumer itself."""
    names = {f.name for f in dataclasses.fields(ConsumerConfig)}
    config = ConsumerConfig(**{k: v for k, v in options.items() if k in names})
    return config, {k: v for k, v in options.items() if k not in names}


class LogBounds(NamedTuple):
    """Where a partition's offsets start, where ``"latest"`` reads from (for read_committed
    the last stable offset) and its high watermark, which a committed offset may not pass."""

    start: int
    latest: int
    end: int


class ConsumerBase(ClientLifecycle):
    """Positions, seeking, commits and the checks around poll; see the module doc."""

    def __init__(self, config: ConsumerConfig, decoder: RecordDecoder | None) -> None:
        self._config = config
        self._decoder = decoder  # Lab.consumer's, for Confluent-framed records (port/record_decode.py)
        self.group = config.group
        self.client_id = config.client_id
        self._reset: OffsetReset = config.auto_offset_reset
        self._auto_commit = config.enable_auto_commit and config.group is not None
        self._auto_commit_interval = config.auto_commit_interval_ms / 1000
        self._last_auto_commit = time.monotonic()
        self._max_poll_records = config.max_poll_records
        self._on_assign, self._on_revoke, self._on_lost = config.on_assign, config.on_revoke, config.on_lost
        self._subscription: list[str] = []
        self._manual = False
        # None: no committed offset and auto_offset_reset="none"; poll() raises until seek().
        self._positions: dict[TopicPartition, int | None] = {}
        self._closed = False

    # what each engine supplies ----------------------------------------------------------
    def _topic_names(self) -> list[str]:
        raise NotImplementedError

    def _check_topic(self, topic: str) -> None:
        """Raise UnknownTopicError for a topic that does not exist."""
        raise NotImplementedError

    def _check_partition(self, tp: TopicPartition) -> None:
        raise NotImplementedError

    def _follow(self, topics: list[str], pattern: re.Pattern[str] | None) -> None:
        """Start following a new subscription (``pattern``, when given, chose ``topics``)."""
        raise NotImplementedError

    def _bounds(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, LogBounds]:
        raise NotImplementedError

    def _offsets_for_time(self, partitions: Sequence[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        raise NotImplementedError

    def _stored_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offsets among ``partitions`` (those without one left out)."""
        raise NotImplementedError

    def _write_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], *, asynchronous: bool) -> None:
        raise NotImplementedError

    def _read(self, limit: int, deadline: float) -> list[Record]:
        """Up to ``limit`` records, waiting until ``deadline`` (time.monotonic) for the first."""
        raise NotImplementedError

    def _sync_assignment(self) -> None:
        """Bring the assignment up to date before it is looked at; by default it arrives in poll()."""

    def _assignment_changed(self) -> None:
        """Tell the engine the positions' partitions changed outside a group (assign())."""

    def _check_commit(self) -> None:
        """Refuse an explicit commit the group would refuse (by default: let it answer)."""

    def _move(self, targets: dict[TopicPartition, int]) -> None:
        self._positions.update(targets)

    # assignment -------------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str] | str | None = None, *, pattern: str | None = None) -> None:
        """Follow ``topics``, or every topic whose whole name matches the regex ``pattern``
        (a matching topic created later joins the subscription, as in Kafka)."""
        self._check_open()
        if (topics is None) == (pattern is None):
            raise ConfigError("subscribe to a list of topics or to a pattern, not both and not neither")
        compiled: re.Pattern[str] | None = None
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from exc
            chosen = matching_topics(compiled, self._topic_names())
        else:
            chosen = [topics] if isinstance(topics, str) else list(topics or [])
            for topic in chosen:
                self._check_topic(topic)
        self._subscription, self._manual = chosen, False
        self._follow(chosen, compiled)

    def subscription(self) -> list[str]:
        return list(self._subscription)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions, outside any group rebalancing."""
        self._check_open()
        wanted = list(partitions)
        for tp in wanted:
            self._check_partition(tp)
        self._leave_subscription()
        self._manual, self._subscription = True, []
        self._set_assignment(wanted)

    def _leave_subscription(self) -> None:
        """Stop following the subscription before assign() takes over."""

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def _set_assignment(self, wanted: Sequence[TopicPartition]) -> None:
        revoked = [tp for tp in self._positions if tp not in wanted]
        added = [tp for tp in wanted if tp not in self._positions]
        if revoked and self._auto_commit:
            self._commit_positions(revoked)
        if revoked and self._on_revoke:
            self._on_revoke(sorted(revoked))
        for tp in revoked:
            del self._positions[tp]
        self._positions.update(self._start_positions(added))
        self._assignment_changed()
        if added and self._on_assign:
            self._on_assign(sorted(added))

    def _start_positions(self, added: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """Where reading starts: the group's committed offset, else ``auto_offset_reset``; a
        committed offset past the log's end is out of range (Kafka's OFFSET_OUT_OF_RANGE)
        and resets, with a warning ("none": it stays, and reading raises)."""
        if not added:
            return {}
        stored = self._stored_offsets(added) if self.group is not None else {}
        if self._reset == "none":
            return {tp: stored.get(tp) for tp in added}
        bounds = self._bounds(added)
        start: dict[TopicPartition, int | None] = {}
        for tp in added:
            reset_to = self._reset_to(bounds[tp])
            committed = stored.get(tp)
            if committed is None:
                start[tp] = reset_to
            elif committed > bounds[tp].end:
                warn_offset_reset(tp, committed, bounds[tp].end, self._reset, reset_to)
                start[tp] = reset_to
            else:
                start[tp] = committed
        return start

    def _reset_to(self, bounds: LogBounds) -> int:
        return bounds.start if self._reset == "earliest" else bounds.latest

    # reading ----------------------------------------------------------------------------
    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first.
        Confluent-framed keys and values come decoded when the lab made this consumer with
        ``value_format="auto"`` (the default)."""
        records = self._poll(timeout, max_records)
        return self._decoder.records(records) if self._decoder is not None and records else records

    def poll_frame(
        self, timeout: float = 1.0, max_records: int | None = None, *, raw: bool = False, headers: bool = False
    ) -> pd.DataFrame:
        """One :meth:`poll` as a DataFrame shaped like ``lab.replay`` (``topic`` first, then
        partition, offset, timestamp, key and the decoded value columns; ``raw`` and
        ``headers`` as in replay), rows by topic, partition, offset. Commit after it as
        after a poll. An empty poll gives an empty frame with the same columns."""
        return polled_frame(self._poll(timeout, max_records), self._decoder, raw=raw, headers=headers)

    def _poll(self, timeout: float, max_records: int | None) -> list[Record]:
        self._check_open()
        limit = self._max_poll_records if max_records is None else max_records
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"max_records must be a positive integer, got {max_records!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigError(f"timeout is in seconds (a number), got {timeout!r}")
        self._maybe_auto_commit()
        return self._read(limit, time.monotonic() + max(timeout, 0))

    # positions --------------------------------------------------------------------------
    def position(self, tp: TopicPartition) -> int:
        position = self._positions[self._assigned_tp(tp)]
        if position is None:
            raise no_position(tp)
        return position

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._move({self._assigned_tp(tp): check_offset(offset)})

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        self._move({tp: b.start for tp, b in self._bounds(self._targets(partitions)).items()})

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        self._move({tp: b.latest for tp, b in self._bounds(self._targets(partitions)).items()})

    def seek_to_timestamp(self, timestamp: Any, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Move to the first record at or after ``timestamp`` (datetime, ISO string or ms)."""
        ms = to_ms(timestamp)
        self._move(self._offsets_for_time(self._targets(partitions), ms))

    def _targets(self, partitions: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        self._check_open()
        self._sync_assignment()
        return list(self._positions) if partitions is None else [self._assigned_tp(tp) for tp in partitions]

    def _assigned_tp(self, tp: TopicPartition) -> TopicPartition:
        self._check_open()
        if tp not in self._positions:
            self._sync_assignment()
        if tp not in self._positions:
            raise StreamlabError(
                f"{tp} is not assigned to this consumer (assigned: {sorted(self._positions)})",
                topic=tp.topic,
                partition=tp.partition,
            )
        return tp

    # committing -------------------------------------------------------------------------
    def commit(
        self,
        offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None,
        *,
        asynchronous: bool = False,
    ) -> None:
        """Commit ``offsets`` (default: the current positions) for this consumer's group."""
        self._check_open()
        if self.group is None:
            raise NoGroupError("committing needs a consumer group: pass group='...' when creating the consumer")
        if offsets is None:
            chosen = {tp: OffsetAndMetadata(pos) for tp, pos in self._positions.items() if pos is not None}
        else:
            chosen = {tp: committable(tp, om) for tp, om in offsets.items()}
        self._check_commit()
        self._write_commit(chosen, asynchronous=asynchronous)

    def _commit_positions(self, partitions: Iterable[TopicPartition]) -> None:
        # Before giving partitions away (and on close), so their next owner resumes where we stopped.
        chosen = {tp: OffsetAndMetadata(pos) for tp in partitions if (pos := self._positions.get(tp)) is not None}
        if chosen:
            self._write_commit(chosen, asynchronous=False)

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        if self.group is None:
            raise NoGroupError("committed offsets belong to a group: pass group='...' when creating the consumer")
        wanted = list(partitions)
        stored = self._stored_offsets(wanted)
        return {tp: stored.get(tp) for tp in wanted}

    def _maybe_auto_commit(self) -> None:
        if self._auto_commit and time.monotonic() - self._last_auto_commit >= self._auto_commit_interval:
            self._last_auto_commit = time.monotonic()
            if self._positions:
                self.commit(asynchronous=True)


def matching_topics(pattern: re.Pattern[str], topics: Iterable[str]) -> list[str]:
    """The topics whose whole name matches ``pattern``, sorted (a subscription's order)."""
    return sorted(t for t in topics if pattern.fullmatch(t))


def no_position(tp: TopicPartition) -> OffsetOutOfRangeError:
    return OffsetOutOfRangeError(
        f"no valid position for {tp} and auto_offset_reset='none'; seek() to a position first",
        topic=tp.topic,
        partition=tp.partition,
    )
