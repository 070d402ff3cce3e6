"""The consumer: subscribe (or assign), poll, seek, commit.

Positions are kept per assigned partition and always mean "the next offset to read", as
in Kafka. Where a position starts comes from the group's committed offset when there is
one, else from ``auto_offset_reset``. Group membership sits behind ``_refresh_assignment``
so the group coordinator can take over deciding the assignment.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from streamlab.broker import Broker
from streamlab.broker.consumer_groups import check_not_consumer_protocol, consumer_groups
from streamlab.broker.fetch import fetch
from streamlab.broker.offsets import commit, committed, offset_for_time
from streamlab.broker.share_registry import check_not_share
from streamlab.broker.transactions import coordinator
from streamlab.client.consumer_membership import ConsumerProtocolMembership
from streamlab.client.decode import to_records
from streamlab.client.membership import GroupMembership
from streamlab.errors import ClosedError, ConfigError, NoGroupError, OffsetOutOfRangeError, StreamlabError
from streamlab.groups.assignors import ASSIGNORS
from streamlab.groups.server_assignors import SERVER_ASSIGNORS
from streamlab.model.names import validate_group_id
from streamlab.model.timeparse import to_ms
from streamlab.model.types import OffsetAndMetadata, Record, TopicPartition, check_offset, committable
from streamlab.port.consumer_rules import warn_offset_reset
from streamlab.port.record_decode import RecordDecoder
from streamlab.port.record_frames import polled_frame

if TYPE_CHECKING:
    import pandas as pd

OffsetReset = Literal["earliest", "latest", "none"]
IsolationLevel = Literal["read_committed", "read_uncommitted"]
GroupProtocol = Literal["classic", "consumer"]
_CLASSIC_DEFAULT = ("range", "cooperative-sticky")
Callback = Callable[[list[TopicPartition]], None]


class Consumer:
    def __init__(
        self,
        broker: Broker,
        topics: Iterable[str] | None = None,
        *,
        group: str | None = None,
        auto_offset_reset: OffsetReset = "latest",
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5000,
        max_poll_records: int = 500,
        client_id: str = "streamlab-consumer",
        on_assign: Callback | None = None,
        on_revoke: Callback | None = None,
        on_lost: Callback | None = None,
        assignor: str | Sequence[str] = _CLASSIC_DEFAULT,
        session_timeout_ms: int = 45_000,
        max_poll_interval_ms: int = 300_000,
        group_instance_id: str | None = None,
        pattern: str | None = None,
        isolation_level: IsolationLevel = "read_uncommitted",
        decoder: RecordDecoder | None = None,
        group_protocol: GroupProtocol = "classic",
    ) -> None:
        if auto_offset_reset not in ("earliest", "latest", "none"):
            raise ConfigError(f"auto_offset_reset must be 'earliest', 'latest' or 'none', got {auto_offset_reset!r}")
        self._decoder = decoder  # Lab.consumer's, for Confluent-framed records (port/record_decode.py)
        if isolation_level not in ("read_committed", "read_uncommitted"):
            raise ConfigError(
                f"isolation_level must be 'read_committed' or 'read_uncommitted', got {isolation_level!r}"
            )
        if group is not None:
            validate_group_id(group)
        validate_group_id(client_id, what="client_id", empty_ok=True)  # stored with the group's history
        # read_committed (Kafka's isolation.level): records below the last stable offset,
        # none of an aborted transaction. Looking the coordinator up now also aborts what
        # a crash left open, before any committed offset or record is read.
        self._committed_only = isolation_level == "read_committed"
        coordinator(broker, create=False)
        self._broker = broker
        self.group = group
        self.client_id = client_id
        self._reset: OffsetReset = auto_offset_reset
        self._auto_commit = enable_auto_commit and group is not None
        self._auto_commit_interval = auto_commit_interval_ms / 1000
        self._last_auto_commit = time.monotonic()
        self._max_poll_records = max_poll_records
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        if group_protocol not in ("classic", "consumer"):
            raise ConfigError(f"group_protocol must be 'classic' or 'consumer', got {group_protocol!r}")
        self.group_protocol: GroupProtocol = group_protocol
        self._server_assignor = server_assignor(assignor) if group_protocol == "consumer" else None
        assignors = (assignor,) if isinstance(assignor, str) else tuple(assignor)
        unknown = [a for a in assignors if a not in ASSIGNORS]
        if group_protocol == "classic" and (unknown or not assignors):
            raise ConfigError(f"assignor must be among {sorted(ASSIGNORS)}, got {assignor!r}")
        self._group_config = {
            "assignors": assignors,
            "session_timeout_ms": session_timeout_ms,
            "max_poll_interval_ms": max_poll_interval_ms,
            "group_instance_id": group_instance_id,
        }
        self._membership: GroupMembership | ConsumerProtocolMembership | None = None
        self._pattern: re.Pattern[str] | None = None
        self._subscription: list[str] = []
        self._manual = False
        # None: no committed offset and auto_offset_reset="none"; poll() raises until seek().
        self._positions: dict[TopicPartition, int | None] = {}
        self._rotation = 0
        self._closed = False
        if pattern is not None:
            self.subscribe(pattern=pattern)
        elif topics is not None:
            self.subscribe(topics)

    # assignment -------------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str] | None = None, *, pattern: str | None = None) -> None:
        """Follow ``topics``, or every topic whose whole name matches the regex ``pattern``
        (re-checked at every poll: a matching topic created later joins the subscription,
        and in a group that triggers a rebalance, as in Kafka)."""
        self._check_open()
        if (topics is None) == (pattern is None):
            raise ConfigError("subscribe to a list of topics or to a pattern, not both and not neither")
        if pattern is not None:
            try:
                self._pattern = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from exc
            chosen = self._matching_topics()
        else:
            self._pattern = None
            chosen = [topics] if isinstance(topics, str) else list(topics or [])
            for topic in chosen:
                self._broker.topic(topic)
        self._subscription, self._manual = chosen, False
        if self.group is not None:
            check_not_share(self._broker, self.group)
            if self._membership is None and self.group_protocol == "consumer":
                self._membership = ConsumerProtocolMembership(
                    consumer_groups(self._broker), self.group, client_id=self.client_id, topics=chosen,
                    server_assignor=self._server_assignor,
                    max_poll_interval_ms=self._group_config["max_poll_interval_ms"],  # type: ignore[arg-type]
                    group_instance_id=self._group_config["group_instance_id"],  # type: ignore[arg-type]
                )  # fmt: skip
            elif self._membership is None:
                check_not_consumer_protocol(self._broker, self.group)
                self._membership = GroupMembership(
                    self._broker.groups.group(self.group), client_id=self.client_id, topics=chosen,
                    **self._group_config,  # type: ignore[arg-type]
                )  # fmt: skip
            else:
                self._membership.change_subscription(chosen)
        self._refresh_assignment()

    def _matching_topics(self) -> list[str]:
        assert self._pattern is not None
        return sorted(t for t in list(self._broker.topics) if self._pattern.fullmatch(t))

    def subscription(self) -> list[str]:
        return list(self._subscription)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions, outside any group rebalancing."""
        self._check_open()
        wanted = list(partitions)
        for tp in wanted:
            self._broker.log(tp.topic, tp.partition)
        self._manual, self._subscription = True, []
        self._set_assignment(wanted)

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def _refresh_assignment(self) -> None:
        if self._manual:
            return
        if self._pattern is not None and (matching := self._matching_topics()) != self._subscription:
            self._subscription = matching
            if self._membership is not None:
                self._membership.change_subscription(matching)
        if self._membership is not None:
            held, lost = self._membership.step(set(self._positions))
            if lost and self._positions:
                lost_tps = sorted(self._positions)
                self._positions.clear()
                if self._on_lost:
                    self._on_lost(lost_tps)
            wanted_set = set() if held is None else held
            if wanted_set != set(self._positions):
                self._set_assignment(sorted(wanted_set))
            return
        wanted = [
            TopicPartition(t, p) for t in self._subscription if t in self._broker.topics
            for p in range(self._broker.topics[t].partitions)
        ]  # fmt: skip
        if set(wanted) != set(self._positions):
            self._set_assignment(wanted)

    def _set_assignment(self, wanted: Sequence[TopicPartition]) -> None:
        revoked = [tp for tp in self._positions if tp not in wanted]
        added = [tp for tp in wanted if tp not in self._positions]
        if revoked and self._auto_commit:
            self._commit_positions(revoked)
        if revoked and self._on_revoke:
            self._on_revoke(sorted(revoked))
        for tp in revoked:
            del self._positions[tp]
        start = committed(self._broker, self.group) if self.group else {}
        for tp in added:
            om = start.get(tp)
            if om is not None:
                self._positions[tp] = self._committed_position(tp, om.offset)
            else:
                self._positions[tp] = None if self._reset == "none" else self._reset_position(tp)
        if added and self._on_assign:
            self._on_assign(sorted(added))

    def _committed_position(self, tp: TopicPartition, offset: int) -> int | None:
        """Where a committed ``offset`` says to start; one past the log's end is out of
        range (Kafka's OFFSET_OUT_OF_RANGE) and resets, with a warning, by ``auto_offset_reset``
        ("none": poll() raises)."""
        end = self._broker.log(tp.topic, tp.partition).high_watermark
        if offset <= end or self._reset == "none":
            return offset
        new = self._reset_position(tp)
        warn_offset_reset(tp, offset, end, self._reset, new)
        return new

    def _reset_position(self, tp: TopicPartition) -> int:
        log = self._broker.log(tp.topic, tp.partition)
        if self._reset == "earliest":
            return log.log_start_offset
        if self._reset == "latest":
            return self._end(tp)
        raise self._no_position(tp)

    def _end(self, tp: TopicPartition) -> int:
        """Where "latest" is: the high watermark, or for read_committed the last stable offset."""
        high = self._broker.log(tp.topic, tp.partition).high_watermark
        txns = coordinator(self._broker, create=False) if self._committed_only else None
        return high if txns is None else txns.last_stable_offset(tp.topic, tp.partition, high)

    @staticmethod
    def _no_position(tp: TopicPartition) -> OffsetOutOfRangeError:
        return OffsetOutOfRangeError(
            f"no valid position for {tp} and auto_offset_reset='none'; seek() to a position first",
            topic=tp.topic,
            partition=tp.partition,
        )

    # reading ----------------------------------------------------------------------------
    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first.
        Confluent-framed keys and values come decoded when the lab made this consumer with
        ``value_format="auto"`` (the default)."""
        records = self._poll(timeout, max_records)
        return self._decoder.records(records) if self._decoder is not None and records else records

    def _poll(self, timeout: float, max_records: int | None) -> list[Record]:
        self._check_open()
        limit = self._max_poll_records if max_records is None else max_records
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"max_records must be a positive integer, got {max_records!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigError(f"timeout is in seconds (a number), got {timeout!r}")
        self._maybe_auto_commit()
        deadline = time.monotonic() + max(timeout, 0)
        while True:
            self._refresh_assignment()
            records = self._fetch_once(limit)
            left = deadline - time.monotonic()
            if records or left <= 0:
                return records
            self._broker.wait_for_data(min(left, 0.1))
            self._check_open()

    def poll_frame(
        self, timeout: float = 1.0, max_records: int | None = None, *, raw: bool = False, headers: bool = False
    ) -> pd.DataFrame:
        """One :meth:`poll` as a DataFrame shaped like ``lab.replay`` (``topic`` first, then
        partition, offset, timestamp, key and the decoded value columns; ``raw`` and
        ``headers`` as in replay), rows by topic, partition, offset. Commit after it as
        after a poll. An empty poll gives an empty frame with the same columns."""
        return polled_frame(self._poll(timeout, max_records), self._decoder, raw=raw, headers=headers)

    def _fetch_once(self, limit: int) -> list[Record]:
        tps = list(self._positions)
        if not tps:
            return []
        self._rotation = (self._rotation + 1) % len(tps)
        out: list[Record] = []
        for tp in tps[self._rotation :] + tps[: self._rotation]:
            if len(out) >= limit:
                break
            position = self._positions[tp]
            if position is None:
                raise self._no_position(tp)
            txns = coordinator(self._broker, create=False) if self._committed_only else None
            try:
                if txns is None:
                    table, next_position = fetch(self._broker, tp.topic, tp.partition, position, limit - len(out))
                else:
                    table, next_position = txns.read_committed(tp.topic, tp.partition, position, limit - len(out))
            except OffsetOutOfRangeError:
                if self._reset == "none":
                    raise
                self._positions[tp] = new = self._reset_position(tp)
                end = self._broker.log(tp.topic, tp.partition).high_watermark
                if position > end:  # sought past the end (before it: retention removed it)
                    warn_offset_reset(tp, position, end, self._reset, new)
                continue
            if table.num_rows:
                out.extend(to_records(tp.topic, tp.partition, table))
            self._positions[tp] = next_position  # past transaction markers too
        return out

    # positions --------------------------------------------------------------------------
    def position(self, tp: TopicPartition) -> int:
        position = self._positions[self._assigned(tp)]
        if position is None:
            raise self._no_position(tp)
        return position

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[self._assigned(tp)] = check_offset(offset)

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        for tp in self._targets(partitions):
            self._positions[tp] = self._broker.log(tp.topic, tp.partition).log_start_offset

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        for tp in self._targets(partitions):
            self._positions[tp] = self._end(tp)

    def seek_to_timestamp(self, timestamp: Any, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Move to the first record at or after ``timestamp`` (datetime, ISO string or ms)."""
        ms = to_ms(timestamp)
        for tp in self._targets(partitions):
            self._positions[tp] = offset_for_time(self._broker, tp.topic, tp.partition, ms)

    def _targets(self, partitions: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        self._check_open()
        self._refresh_assignment()
        return list(self._positions) if partitions is None else [self._assigned(tp) for tp in partitions]

    def _assigned(self, tp: TopicPartition) -> TopicPartition:
        self._check_open()
        if tp not in self._positions:
            self._refresh_assignment()
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
        current = {tp: pos for tp, pos in self._positions.items() if pos is not None}
        chosen: dict[TopicPartition, int | OffsetAndMetadata] = dict(current) if offsets is None else offsets
        normalized = {tp: committable(tp, om) for tp, om in chosen.items()}
        if self._membership is not None and not self._manual:
            self._membership.check_commit()
        commit(self._broker, self.group, normalized)

    def _commit_positions(self, partitions: Iterable[TopicPartition]) -> None:
        # Before giving partitions away, so their next owner resumes where we stopped.
        assert self.group is not None
        chosen = {tp: OffsetAndMetadata(pos) for tp in partitions if (pos := self._positions.get(tp)) is not None}
        if chosen:
            commit(self._broker, self.group, chosen)

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        if self.group is None:
            raise NoGroupError("committed offsets belong to a group: pass group='...' when creating the consumer")
        stored = committed(self._broker, self.group)
        return {tp: (stored[tp].offset if tp in stored else None) for tp in partitions}

    def _maybe_auto_commit(self) -> None:
        if self._auto_commit and time.monotonic() - self._last_auto_commit >= self._auto_commit_interval:
            self._last_auto_commit = time.monotonic()
            if self._positions:
                self.commit()

    # lifecycle --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this consumer is closed; create a new one with lab.consumer()")
        self._broker.check_open()

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._auto_commit and self._positions and not self._broker.closed:
                self._commit_positions(list(self._positions))
        finally:
            self._closed = True
            if self._membership is not None:
                self._membership.leave()

    def _die(self) -> None:
        """Stop without a word (no commit, no leave, no heartbeats), like a crashed process."""
        self._closed = True
        if self._membership is not None:
            self._membership.stop_heartbeats()

    @property
    def member_id(self) -> str | None:
        return self._membership.member_id if self._membership else None

    @property
    def generation(self) -> int:
        return self._membership.generation if self._membership else -1

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:
        raise TypeError("iterate with poll(timeout=..., max_records=...) so a notebook cell always ends")


def server_assignor(assignor: str | Sequence[str]) -> str | None:
    """The server-side assignor a ``group_protocol="consumer"`` member asks for (Kafka's
    ``group.remote.assignor``): ``"uniform"`` or ``"range"``; None (the classic default
    left as it is) lets the group choose (``uniform``)."""
    if assignor == _CLASSIC_DEFAULT or (not isinstance(assignor, str) and tuple(assignor) == _CLASSIC_DEFAULT):
        return None
    if not isinstance(assignor, str) or assignor not in SERVER_ASSIGNORS:
        raise ConfigError(
            f"with group_protocol='consumer' the broker assigns: assignor must be one of "
            f"{sorted(SERVER_ASSIGNORS)}, got {assignor!r}"
        )
    return assignor
