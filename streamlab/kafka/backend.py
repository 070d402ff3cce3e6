"""``KafkaBackend``: the backend port (:mod:`streamlab.port.backend`) over a Kafka cluster,
behind the one Lab front that ``streamlab.connect("kafka://...")`` returns.

The front gives every method the embedded Lab's arguments, return columns and exceptions.
Where a Kafka cluster cannot give the same answer, this is what happens instead:

- ``topics()["bytes"]`` is NaN: confluent-kafka has no DescribeLogDirs. ``config`` shows
  the topic's non-default settings and those the embedded broker knows (numbers as ints).
- ``groups()["generation"]`` is <NA>: DescribeGroups does not return it.
- ``rebalances()`` raises :class:`~streamlab.kafka.UnsupportedOperationError`: the history
  is written by the embedded broker into its data directory (``streamlab serve`` keeps it
  there too: open that directory with ``streamlab.connect(DIR)`` to read it).
- ``sql()`` works by replaying every topic the statement names into DuckDB, with the
  same views as the embedded broker. It reads those topics whole into memory.
- ``replay`` and ``seek_to_timestamp`` turn times into offsets with ListOffsets (the
  first offset whose timestamp is at or after the time), then ``replay`` also filters
  rows by timestamp. The embedded broker filters every record by its timestamp; the two
  agree whenever timestamps grow with offsets. A broker without a time index (librdkafka's
  mock cluster) is noticed, and the offset is found by a binary search over records.
- ``roll()`` and ``apply_retention()`` raise: segments and retention belong to the brokers.

Against librdkafka's mock cluster (:mod:`streamlab.kafka.mock_cluster`) in the same
process, topics are created and deleted through its C API (it has no admin APIs), its
topic configs are remembered here, ``create_partitions``, ``groups()`` and
``describe_group()`` raise :class:`~streamlab.kafka.UnsupportedOperationError`, and
consumers default to ``session_timeout_ms=2000``: the mock re-forms a group
session.timeout.ms - 1 s after a member joins or leaves. Applying ``reset_offsets`` to a
group that ever had members raises GroupNotEmptyError there (the mock never forgets them).

The topic admin engines live in :mod:`streamlab.kafka.topic_admin`, offsets and record
reads in :mod:`streamlab.kafka.reader`, consumer groups in :mod:`streamlab.kafka.group_admin`;
this module wires them into the backend port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

import confluent_kafka as ck
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from confluent_kafka.admin import AdminClient, OffsetSpec

from streamlab.config import TOPIC_CONFIGS
from streamlab.errors import (
    ClosedError,
    InvalidPartitionsError,
    OperationTimeoutError,
    StreamlabError,
    TopicExistsError,
    UnknownTopicError,
    UnsupportedOperationError,
)
from streamlab.kafka import SCHEME, client_config, group_admin, log, parse_target, translate
from streamlab.kafka import mock_cluster as mocks
from streamlab.kafka.consumer import KafkaConsumer
from streamlab.kafka.producer import KafkaProducer
from streamlab.kafka.reader import KafkaReader
from streamlab.kafka.schemas import ConfluentRegistry
from streamlab.kafka.share_consumer import KafkaShareConsumer
from streamlab.kafka.topic_admin import KafkaTopicAdmin, TopicAdmin, TopicInfo
from streamlab.model.names import validate_topic_name
from streamlab.model.types import TopicPartition, unknown_partition
from streamlab.model.views import Bounds, quote, view_sql
from streamlab.port.backend import ShareGroupSnapshot
from streamlab.port.consumer_base import split_consumer_options
from streamlab.port.history import MemoryHistory
from streamlab.port.producer_base import ProducerSettings
from streamlab.port.share_base import split_share_consumer_options

DEFAULT_MAX_MESSAGE_BYTES = TOPIC_CONFIGS["max.message.bytes"][0]
CONNECT_TIMEOUT_S = 5.0  # how long connect() waits for a first answer from the cluster
_TOPIC_INFO_TTL = 10.0
_ids = itertools.count()


class KafkaBackend:
    """A Kafka cluster you can produce to, consume from, replay and query like the embedded broker."""

    def __init__(self, target: str, *, timeout: float = 30.0, schema_registry: str | None = None) -> None:
        self.target = target
        self._registry_url = schema_registry  # a Schema Registry's http(s):// URL, for lab.schemas
        self._registry: ConfluentRegistry | None = None
        self.bootstrap, self.client_options = parse_target(target)
        self.timeout = timeout
        self._admin = AdminClient(client_config(self.bootstrap, self.client_options))
        cluster = mocks.find(self.bootstrap)
        self.topic_admin: TopicAdmin = (
            mocks.MockTopicAdmin(cluster) if cluster is not None else KafkaTopicAdmin(self._admin, timeout)
        )
        # The mock re-forms a group session.timeout.ms - 1 s after any member joins or leaves
        # (Kafka waits for the members instead): a short session keeps that short.
        self.consumer_defaults: dict[str, Any] = {"session_timeout_ms": 2000} if cluster is not None else {}
        self._info: dict[str, TopicInfo] = {}
        self._clients: weakref.WeakSet[KafkaProducer | KafkaConsumer] = weakref.WeakSet()
        self._reader = KafkaReader(
            self._admin, self.bootstrap, self.client_options, timeout=timeout, check_open=self._check_open
        )
        self._history = MemoryHistory()
        self._auto_creation: tuple[bool, int] | None = None  # the cluster's, asked once
        self._closed = False
        self._check_reachable(min(CONNECT_TIMEOUT_S, timeout))

    def describe(self) -> str:
        return f"{SCHEME}{self.bootstrap}"

    def _check_reachable(self, timeout: float) -> None:
        """Fail at connect, within seconds and naming the address, when no broker answers
        (librdkafka would otherwise retry until each call's own timeout)."""
        try:
            self._admin.list_topics(timeout=timeout)
        except ck.KafkaException as exc:
            raise OperationTimeoutError(
                f"no Kafka broker answered at {SCHEME}{self.bootstrap} within {timeout:g} s: check that the cluster "
                f"(or `streamlab serve`) is running and that host and port are right "
                f"(librdkafka: {translate(exc)})"
            ) from exc

    # metadata ---------------------------------------------------------------------------
    def _metadata(self, topic: str | None = None) -> Any:
        self._check_open()
        try:
            return self._admin.list_topics(topic, timeout=self.timeout)
        except ck.KafkaException as exc:
            raise translate(exc, topic=topic, context=f"reading the metadata of {SCHEME}{self.bootstrap}") from exc

    def _topic_info(self, topic: str, *, fresh: bool = False) -> TopicInfo:
        """Partition count and max.message.bytes of ``topic`` (cached for a few seconds)."""
        info = self._info.get(topic)
        if info is not None and not fresh and time.monotonic() - info.fetched < _TOPIC_INFO_TTL:
            return info
        if not isinstance(topic, str) or not topic:
            raise UnknownTopicError(f"unknown topic {topic!r}", topic=None)
        described = self._metadata(topic).topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            self._info.pop(topic, None)
            raise UnknownTopicError(
                f"unknown topic {topic!r}; create it with create_topic({topic!r}, partitions=...)", topic=topic
            )
        config = self.topic_admin.configs([topic]).get(topic, {}) if info is None else {}
        limit = config.get("max.message.bytes", info.max_message_bytes if info else DEFAULT_MAX_MESSAGE_BYTES)
        self._info[topic] = new = TopicInfo(len(described.partitions), int(limit))
        return new

    def _check_partition(self, topic: str, partition: int) -> None:
        for fresh in (False, True):
            count = self._topic_info(topic, fresh=fresh).partitions
            if not isinstance(partition, bool) and isinstance(partition, int) and 0 <= partition < count:
                return
        raise unknown_partition(topic, partition, count)

    # offsets, for this lab's consumers and group admin ----------------------------------
    def _watermarks(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """(log start offset, high watermark) of each partition."""
        return self._reader.watermarks(tps)

    def _offsets_for_time(self, tps: Sequence[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        """Per partition, the first offset whose record's timestamp is >= ``ms`` (else the end)."""
        return self._reader.offsets_for_time(tps, ms)

    def _record_at(self, tp: TopicPartition, offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after ``offset``, if any arrives."""
        return self._reader.record_at(tp, offset)

    def _topic_to_produce_to(self, topic: str) -> TopicInfo:
        """``_topic_info``, first creating an unknown topic as a Kafka producer's first send
        does when the cluster has ``auto.create.topics.enable`` (with its ``num.partitions``)."""
        try:
            return self._topic_info(topic)
        except UnknownTopicError:
            validate_topic_name(topic)
            if self._auto_creation is None:
                self._auto_creation = self.topic_admin.auto_creation()
            enabled, partitions = self._auto_creation
            if not enabled:
                raise UnknownTopicError(
                    f"unknown topic {topic!r}, and the cluster does not create topics on first use "
                    f"(auto.create.topics.enable=false); create it with create_topic({topic!r}, partitions=...)",
                    topic=topic,
                ) from None
            with contextlib.suppress(TopicExistsError):  # created by another producer in between: use it
                self.create_topic(topic, partitions, {}, None)
                log.info("created topic %r with %d partition(s) on first use (auto.create.topics.enable)",
                         topic, partitions)  # fmt: skip
            return self._topic_info(topic, fresh=True)

    # topics -----------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int, config: dict[str, Any], replication_factor: int | None) -> None:
        self._check_open()
        self.topic_admin.create(name, partitions, config, replication_factor)
        self._info.pop(name, None)
        self._wait_for_topic(name, exists=True)

    def _wait_for_topic(self, name: str, *, exists: bool) -> None:
        """Topic creation and deletion reach every broker's metadata a moment later."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            described = self._metadata(name).topics.get(name)
            if (described is not None and described.error is None and bool(described.partitions)) == exists:
                return
            time.sleep(0.05)
        raise OperationTimeoutError(f"topic {name!r} was {'created' if exists else 'deleted'} but metadata disagrees")

    def create_partitions(self, name: str, partitions: int) -> None:
        """Grow ``name`` to ``partitions`` partitions (Kafka never shrinks a topic)."""
        current = self._topic_info(name, fresh=True).partitions
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions <= current:
            raise InvalidPartitionsError(
                f"topic {name!r} has {current} partitions; the new count must be larger, got {partitions}", topic=name
            )
        self.topic_admin.grow(name, partitions)
        deadline = time.monotonic() + self.timeout
        while self._topic_info(name, fresh=True).partitions < partitions and time.monotonic() < deadline:
            time.sleep(0.05)

    def alter_topic_config(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        self._topic_info(name)
        changed = self.topic_admin.alter(name, config)
        self._info.pop(name, None)
        return changed

    def topic_config(self, name: str) -> dict[str, Any]:
        self._topic_info(name)
        return self.topic_admin.configs([name]).get(name, {})

    def delete_topic(self, name: str) -> None:
        self._topic_info(name, fresh=True)  # UnknownTopicError, as on the embedded broker
        self.topic_admin.delete(name)
        self._info.pop(name, None)
        self._wait_for_topic(name, exists=False)

    def topic_rows(self) -> list[dict[str, Any]]:
        """One row per topic: partitions, records (high watermark - log start), bytes (NaN), config."""
        listed = self._metadata().topics
        names = sorted(n for n, t in listed.items() if not n.startswith("__") and t.error is None)
        tps = [TopicPartition(n, p) for n in names for p in sorted(listed[n].partitions)]
        marks = self._watermarks(tps)
        configs = self.topic_admin.configs(names)
        return [
            {
                "name": n,
                "partitions": len(listed[n].partitions),
                "records": sum(high - low for tp, (low, high) in marks.items() if tp.topic == n),
                "bytes": np.nan,
                "config": configs.get(n, {}),
            }
            for n in names
        ]

    def offset_rows(self, topic: str) -> list[tuple[int, int, int]]:
        tps = [TopicPartition(topic, p) for p in range(self._topic_info(topic, fresh=True).partitions)]
        marks = self._watermarks(tps)
        return [(tp.partition, marks[tp][0], marks[tp][1]) for tp in tps]

    def topic_names(self) -> list[str]:
        """Every topic but Kafka's internal ones (``__consumer_offsets``...)."""
        return sorted(n for n, t in self._metadata().topics.items() if not n.startswith("__") and t.error is None)

    def partition_count(self, topic: str) -> int:
        return self._topic_info(topic, fresh=True).partitions

    def offsets_for_time(self, topic: str, partitions: Sequence[int], ms: int) -> dict[int, int]:
        found = self._offsets_for_time([TopicPartition(topic, p) for p in partitions], ms)
        return {tp.partition: offset for tp, offset in found.items()}

    def apply_retention(self, now_ms: int) -> Any:
        raise UnsupportedOperationError("retention runs on the Kafka brokers (retention.ms, retention.bytes)")

    def roll(self, topic: str) -> None:
        raise UnsupportedOperationError("segments are rolled by the Kafka brokers (segment.bytes, segment.ms)")

    # clients ----------------------------------------------------------------------------
    def producer(self, *, kafka_config: Mapping[str, Any] | None = None, **config: Any) -> KafkaProducer:
        """``kafka_config`` takes any other librdkafka setting."""
        return KafkaProducer(self, ProducerSettings(**config), kafka_config=kafka_config)

    def consumer(self, topics: Iterable[str] | str | None, **config: Any) -> KafkaConsumer:
        settings, rest = split_consumer_options({**self.consumer_defaults, **config})
        return KafkaConsumer(self, topics, config=settings, **rest)

    def share_consumer(self, topics: Iterable[str] | str, **config: Any) -> KafkaShareConsumer:
        """The group's settings become group configs on the cluster (see :mod:`streamlab.kafka.share_consumer`)."""
        settings, rest = split_share_consumer_options(config)
        return KafkaShareConsumer(self, topics, settings, **rest)

    def share_state(self, group: str) -> pd.DataFrame:
        raise UnsupportedOperationError(
            "the state of each in-flight record of a share group is the embedded broker's: open the data "
            "directory with streamlab.connect(DIR) (with the server stopped) to see it"
        )

    def share_group_snapshot(self, group: str) -> ShareGroupSnapshot | None:
        raise UnsupportedOperationError(
            "the state of each in-flight record of a share group is the embedded broker's: open the data "
            "directory with streamlab.connect(DIR) (with the server stopped) to see it"
        )

    def partition_bytes(self, topic: str, partition: int) -> int | None:
        return None  # confluent-kafka has no DescribeLogDirs

    def _adopt(self, client: KafkaProducer | KafkaConsumer) -> None:
        self._check_open()
        self._clients.add(client)

    def _release(self, client: KafkaProducer | KafkaConsumer) -> None:
        self._clients.discard(client)

    # consumer groups ------------------------------------------------------------------
    def groups(self) -> pd.DataFrame:
        return group_admin.groups(self)

    def describe_group(self, group: str) -> pd.DataFrame:
        return group_admin.describe_group(self, group)

    def lag(self, group: str) -> pd.DataFrame:
        return group_admin.lag(self, group)

    def rebalances(self, group: str) -> pd.DataFrame:
        raise UnsupportedOperationError(
            f"the full rebalance history of group {group!r} is recorded by the embedded broker, not by Kafka: "
            "run the group against streamlab.connect(DIR) or `streamlab serve --data DIR`, then open DIR with "
            "streamlab.connect(DIR) (with the server stopped) and call rebalances() there"
        )

    def reset_offsets(self, group: str, to: Any, *, dry_run: bool, topics: list[str] | None) -> pd.DataFrame:
        return group_admin.reset_offsets(self, group, to, dry_run=dry_run, topics=topics)

    # analytics --------------------------------------------------------------------------
    def estimate_rows(self, topic: str, bounds: Bounds) -> int:
        """Records between the bounds (times as the offsets the cluster finds for them)."""
        partitions = bounds.partitions if bounds.partitions is not None else range(self.partition_count(topic))
        tps = [TopicPartition(topic, p) for p in partitions]
        marks = self._watermarks(tps)
        starts = self._offsets_for_time(tps, bounds.start_ms) if bounds.start_ms is not None else {}
        ends = self._offsets_for_time(tps, bounds.end_ms) if bounds.end_ms is not None else {}
        total = 0
        for tp, (low, high) in marks.items():
            start = max(low, bounds.start_offset or 0, starts.get(tp, 0))
            end = min(high, high if bounds.end_offset is None else bounds.end_offset, ends.get(tp, high))
            total += max(end - start, 0)
        return total

    def replay_table(
        self, topic: str, bounds: Bounds, *, raw: bool, headers: bool, progress: Callable[[int], object] | None,
        committed: bool = True,
    ) -> pa.Table:  # fmt: skip
        """Reads the partitions' records into memory, then gives them the embedded views."""
        if bounds.partitions is None:
            bounds = dataclasses.replace(bounds, partitions=list(range(self.partition_count(topic))))
        table = self._reader.read_topic(topic, bounds, progress=progress, committed=committed)
        con = duckdb.connect()
        try:
            name = f"_kafka_{next(_ids)}"
            con.register(name, table)
            view = view_sql(con, f"SELECT * FROM {name} WHERE {bounds.where()}", raw=raw, headers=headers,
                            formats=True)  # fmt: skip
            return con.sql(f'SELECT * FROM ({view}) ORDER BY partition, "offset"').to_arrow_table()
        finally:
            con.close()

    def sql_table(self, statement: str, *, committed: bool = True) -> pa.Table:
        """Each topic the statement names is replayed whole into memory first, then queried
        with the same views as the embedded broker."""
        listed = {n for n in self._metadata().topics if not n.startswith("__")}
        by_lower = {n.lower(): n for n in listed}
        named = {by_lower.get(n.lower(), n) for n in duckdb.get_table_names(statement)}
        con = duckdb.connect()
        try:
            for topic in sorted(named & listed):
                source = f"_kafka_{next(_ids)}"
                all_partitions = Bounds(partitions=list(range(self.partition_count(topic))))
                con.register(source, self._reader.read_topic(topic, all_partitions, progress=None, committed=committed))
                con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(topic)} AS {view_sql(con, f'SELECT * FROM {source}')}")
            return con.sql(statement).to_arrow_table()
        finally:
            con.close()

    def transaction_rows(self, topic: str, partition: int, start: int, end: int) -> pa.Table:
        """Kafka's clients hide control records, so no marker rows here: a read_uncommitted
        and a read_committed read of the range are compared instead; what only the first
        has is "aborted" below the last stable offset and "open" from it on (no producer id)."""
        tp = TopicPartition(topic, partition)
        stable = self._reader.list_offsets({tp: OffsetSpec.latest()}, committed=True)[tp]
        everything = self._reader.read({tp: (start, end)}, committed=False)
        seen = self._reader.read({tp: (start, min(end, stable))}, committed=True)
        offsets = np.asarray(everything.column("offset").to_numpy())
        hidden = ~np.isin(offsets, np.asarray(seen.column("offset").to_numpy()))
        rows = everything.filter(pa.array(hidden))
        hidden_offsets = np.asarray(rows.column("offset").to_numpy())
        n = rows.num_rows
        return pa.table(
            {
                "offset": rows.column("offset"),
                "timestamp": rows.column("timestamp"),
                "transaction": pa.array(np.where(hidden_offsets < stable, "aborted", "open").tolist(), pa.string()),
                "marker": pa.nulls(n, pa.string()),
                "producer_id": pa.nulls(n, pa.int64()),
                "producer_epoch": pa.nulls(n, pa.int32()),
            }
        )

    def history(self) -> MemoryHistory:
        """History samples stay in this lab's memory: Kafka has no place for them."""
        return self._history

    # lifecycle --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"this lab is closed; connect again with streamlab.connect({self.target!r})")

    def has_schema_registry(self) -> bool:
        return self._registry_url is not None

    def schema_registry(self) -> ConfluentRegistry:
        self._check_open()
        if self._registry is None:
            if self._registry_url is None:
                raise UnsupportedOperationError(
                    f"this lab has no Schema Registry: connect with streamlab.connect({self.target!r}, "
                    "schema_registry='http://host:8081')"
                )
            self._registry = ConfluentRegistry(self._registry_url)
        return self._registry

    def broker_to_serve(self) -> NoReturn:
        raise UnsupportedOperationError(
            f"serve() starts a Kafka endpoint for an embedded lab's data directory; this lab is connected "
            f"to the Kafka cluster at {self.target}: give Kafka clients that address (without kafka://)"
        )

    def close(self) -> None:
        """Close every producer (sending what is queued) and consumer of this lab. Safe to call twice."""
        if self._closed:
            return
        try:
            if self._registry is not None:
                self._registry.close()
            for client in list(self._clients):
                try:
                    client.close()
                except StreamlabError as exc:
                    log.warning("closing %r: %s", client, exc)
            self._reader.close()
        finally:
            self._closed = True
