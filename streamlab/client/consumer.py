"""The embedded consumer: subscribe (or assign), poll, seek, commit on the open broker.

Positions, seeking, commits and the poll loop's checks are shared with ``kafka://``
(:mod:`streamlab.port.consumer_base`); this module reads the broker's logs and committed
offsets and steps group membership (``_sync_assignment``, at every poll and before
positions are looked at), re-checking a pattern subscription against the broker's topics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from streamlab.broker import Broker
from streamlab.broker.consumer_groups import check_not_consumer_protocol, consumer_groups
from streamlab.broker.fetch import fetch, fetch_committed
from streamlab.broker.offsets import commit, committed, offset_for_time
from streamlab.broker.share_registry import check_not_share
from streamlab.broker.transaction_registry import coordinator
from streamlab.client.consumer_membership import ConsumerProtocolMembership
from streamlab.client.decode import to_records
from streamlab.client.membership import GroupMembership
from streamlab.client.polling import fetch_until
from streamlab.errors import ConfigError, OffsetOutOfRangeError
from streamlab.groups.assignors import ASSIGNORS
from streamlab.groups.server_assignors import SERVER_ASSIGNORS
from streamlab.model.types import OffsetAndMetadata, Record, TopicPartition
from streamlab.port.consumer_base import ConsumerBase, ConsumerConfig, LogBounds, matching_topics, no_position
from streamlab.port.consumer_rules import warn_offset_reset
from streamlab.port.record_decode import RecordDecoder


class Consumer(ConsumerBase):
    def __init__(
        self,
        broker: Broker,
        topics: Iterable[str] | str | None = None,
        *,
        config: ConsumerConfig | None = None,
        pattern: str | None = None,
        decoder: RecordDecoder | None = None,
    ) -> None:
        config = config or ConsumerConfig()
        super().__init__(config, decoder)
        # read_committed (Kafka's isolation.level): records below the last stable offset,
        # none of an aborted transaction. Looking the coordinator up now also aborts what
        # a crash left open, before any committed offset or record is read.
        self._committed_only = config.isolation_level == "read_committed"
        coordinator(broker, create=False)
        self._broker = broker
        self.group_protocol = config.group_protocol
        self._server_assignor = config.remote_assignor(SERVER_ASSIGNORS) if self.group_protocol == "consumer" else None
        assignors = config.assignors
        unknown = [a for a in assignors if a not in ASSIGNORS]
        if self.group_protocol == "classic" and (unknown or not assignors):
            raise ConfigError(f"assignor must be among {sorted(ASSIGNORS)}, got {config.assignor!r}")
        self._membership: GroupMembership | ConsumerProtocolMembership | None = None
        self._pattern: re.Pattern[str] | None = None
        self._rotation = 0
        if pattern is not None:
            self.subscribe(pattern=pattern)
        elif topics is not None:
            self.subscribe(topics)

    # the broker's side of the base ------------------------------------------------------
    def _check_backend_open(self) -> None:
        self._broker.check_open()

    def _topic_names(self) -> list[str]:
        return list(self._broker.topics)

    def _check_topic(self, topic: str) -> None:
        self._broker.topic(topic)

    def _check_partition(self, tp: TopicPartition) -> None:
        self._broker.log(tp.topic, tp.partition)

    def _bounds(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, LogBounds]:
        out = {}
        for tp in partitions:
            log = self._broker.log(tp.topic, tp.partition)
            out[tp] = LogBounds(log.log_start_offset, self._latest(tp), log.high_watermark)
        return out

    def _latest(self, tp: TopicPartition) -> int:
        """Where "latest" is: the high watermark, or for read_committed the last stable offset."""
        high = self._broker.log(tp.topic, tp.partition).high_watermark
        txns = coordinator(self._broker, create=False) if self._committed_only else None
        return high if txns is None else txns.last_stable_offset(tp.topic, tp.partition, high)

    def _offsets_for_time(self, partitions: Sequence[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        return {tp: offset_for_time(self._broker, tp.topic, tp.partition, ms) for tp in partitions}

    def _stored_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        assert self.group is not None
        stored = committed(self._broker, self.group)
        return {tp: stored[tp].offset for tp in partitions if tp in stored}

    def _check_commit(self) -> None:
        if self._membership is not None and not self._manual:
            self._membership.check_commit()

    def _write_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], *, asynchronous: bool) -> None:
        assert self.group is not None
        commit(self._broker, self.group, offsets)  # an empty commit still makes the group known, as in Kafka

    # assignment -------------------------------------------------------------------------
    def _follow(self, topics: list[str], pattern: re.Pattern[str] | None) -> None:
        self._pattern = pattern
        if self.group is not None:
            check_not_share(self._broker, self.group)
            if self._membership is None and self.group_protocol == "consumer":
                self._membership = ConsumerProtocolMembership(
                    consumer_groups(self._broker), self.group, client_id=self.client_id, topics=topics,
                    server_assignor=self._server_assignor,
                    max_poll_interval_ms=self._config.max_poll_interval_ms,
                    group_instance_id=self._config.group_instance_id,
                )  # fmt: skip
            elif self._membership is None:
                check_not_consumer_protocol(self._broker, self.group)
                self._membership = GroupMembership(
                    self._broker.groups.group(self.group), client_id=self.client_id, topics=topics,
                    assignors=self._config.assignors, session_timeout_ms=self._config.session_timeout_ms,
                    max_poll_interval_ms=self._config.max_poll_interval_ms,
                    group_instance_id=self._config.group_instance_id,
                )  # fmt: skip
            else:
                self._membership.change_subscription(topics)
        self._sync_assignment()

    def _sync_assignment(self) -> None:
        if self._manual:
            return
        if self._pattern is not None:
            matching = matching_topics(self._pattern, list(self._broker.topics))
            if matching != self._subscription:
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

    # reading ----------------------------------------------------------------------------
    def _read(self, limit: int, deadline: float) -> list[Record]:
        def fetch() -> list[Record]:
            self._sync_assignment()
            return self._fetch_once(limit)

        return fetch_until(self._broker, deadline, fetch, self._check_open, step=0.1)

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
                raise no_position(tp)
            txns = coordinator(self._broker, create=False) if self._committed_only else None
            try:
                if txns is None:
                    table, next_position = fetch(self._broker, tp.topic, tp.partition, position, limit - len(out))
                else:
                    table, next_position = fetch_committed(
                        self._broker, txns, tp.topic, tp.partition, position, limit - len(out)
                    )
            except OffsetOutOfRangeError:
                if self._reset == "none":
                    raise
                bounds = self._bounds([tp])[tp]
                self._positions[tp] = new = self._reset_to(bounds)
                if position > bounds.end:  # sought past the end (before it: retention removed it)
                    warn_offset_reset(tp, position, bounds.end, self._reset, new)
                continue
            if table.num_rows:
                out.extend(to_records(tp.topic, tp.partition, table))
            self._positions[tp] = next_position  # past transaction markers too
        return out

    # lifecycle --------------------------------------------------------------------------
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
