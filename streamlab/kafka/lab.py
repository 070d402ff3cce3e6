"""``KafkaLab``: the Lab API over a Kafka cluster (``streamlab.connect("kafka://...")``).

Every method has the embedded Lab's arguments, return columns and exceptions. Where a
Kafka cluster cannot give the same answer, this is what happens instead:

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
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import confluent_kafka as ck
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from streamlab.broker import query
from streamlab.client.replay_frame import replay_bound, replay_dataframe
from streamlab.client.timeparse import to_ms
from streamlab.config import TOPIC_CONFIGS
from streamlab.errors import (
    ClosedError,
    ConfigError,
    GroupNotEmptyError,
    InvalidOffsetError,
    InvalidPartitionsError,
    OperationTimeoutError,
    StreamlabError,
    UnknownMemberError,
    UnknownPartitionError,
    UnknownTopicError,
)
from streamlab.kafka import SCHEME, UnsupportedOperationError, client_config, log, parse_target, translate
from streamlab.kafka import mock_cluster as mocks
from streamlab.kafka.consumer import KafkaConsumer, check_message, ck_partition, decode_message, next_batch
from streamlab.kafka.producer import KafkaProducer
from streamlab.kafka.share_consumer import KafkaShareConsumer
from streamlab.model.names import validate_topic_name
from streamlab.model.types import TopicPartition
from streamlab.storage.fields import expand_json_objects
from streamlab.storage.schema import FIELDS_COLUMN, HEADER_TYPE, RECORD_SCHEMA, TIMESTAMP_TYPE

DEFAULT_MAX_MESSAGE_BYTES = TOPIC_CONFIGS["max.message.bytes"][0]
PROGRESS_FROM = 100_000  # records: a replay this large shows a progress bar
_TOPIC_INFO_TTL = 10.0
_STATES = {"STABLE": "Stable", "EMPTY": "Empty", "DEAD": "Dead", "UNKNOWN": "Unknown",
           "PREPARING_REBALANCING": "PreparingRebalance", "COMPLETING_REBALANCING": "CompletingRebalance"}  # fmt: skip
_ids = itertools.count()


@dataclass(frozen=True, slots=True)
class TopicInfo:
    partitions: int
    max_message_bytes: int
    fetched: float = field(default_factory=time.monotonic)


class TopicAdmin(Protocol):
    """Creating, growing, configuring and deleting topics: by AdminClient, or by the mock's C API."""

    def create(self, name: str, partitions: int, config: dict[str, Any], replication: int | None) -> None: ...
    def delete(self, name: str) -> None: ...
    def grow(self, name: str, total: int) -> None: ...
    def configs(self, names: list[str]) -> dict[str, dict[str, Any]]: ...
    def alter(self, name: str, changes: dict[str, Any]) -> dict[str, Any]: ...


class KafkaTopicAdmin:
    def __init__(self, admin: AdminClient, timeout: float) -> None:
        self._admin, self._timeout = admin, timeout

    def _wait(self, futures: Mapping[Any, concurrent.futures.Future[Any]], topic: str, what: str) -> list[Any]:
        try:
            return [f.result(timeout=self._timeout + 5) for f in futures.values()]
        except ck.KafkaException as exc:
            raise translate(exc, topic=topic, context=f"{what} {topic!r}") from exc
        except concurrent.futures.TimeoutError as exc:
            raise OperationTimeoutError(f"{what} {topic!r} timed out after {self._timeout} s", topic=topic) from exc

    def create(self, name: str, partitions: int, config: dict[str, Any], replication: int | None) -> None:
        as_text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in config.items()}
        new = NewTopic(name, num_partitions=partitions, replication_factor=replication or -1, config=as_text)
        self._wait(self._admin.create_topics([new], operation_timeout=self._timeout), name, "creating topic")

    def delete(self, name: str) -> None:
        self._wait(self._admin.delete_topics([name], operation_timeout=self._timeout), name, "deleting topic")

    def grow(self, name: str, total: int) -> None:
        futures = self._admin.create_partitions([NewPartitions(name, total)], operation_timeout=self._timeout)
        self._wait(futures, name, "adding partitions to")

    def configs(self, names: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if not names:
            return out
        resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
        for resource, future in self._admin.describe_configs(resources, request_timeout=self._timeout).items():
            try:
                entries = future.result(timeout=self._timeout + 5)
            except (ck.KafkaException, concurrent.futures.TimeoutError):
                continue  # no DescribeConfigs (or not allowed): the config column stays empty
            out[resource.name] = {
                name: _typed(name, entry.value)
                for name, entry in sorted(entries.items())
                if name in TOPIC_CONFIGS or not entry.is_default
            }
        return out

    def alter(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        entries = [ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in changes.items()]
        resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        self._wait(self._admin.incremental_alter_configs([resource]), name, "altering the config of")
        return self.configs([name]).get(name, {})


def _typed(name: str, value: str | None) -> Any:
    """A Kafka config string as the embedded broker shows it (ints for its numeric configs)."""
    if value is None or name not in TOPIC_CONFIGS:
        return value
    try:
        return TOPIC_CONFIGS[name][1](name, value)
    except ConfigError:
        return value


class KafkaLab:
    """A Kafka cluster you can produce to, consume from, replay and query like the embedded Lab."""

    def __init__(self, target: str, *, timeout: float = 30.0) -> None:
        self.target = target
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
        self._time_index = True  # until the cluster shows it answers ListOffsets-by-time with -1 regardless
        self._info: dict[str, TopicInfo] = {}
        self._clients: weakref.WeakSet[KafkaProducer | KafkaConsumer] = weakref.WeakSet()
        self._reader_handle: ck.Consumer | None = None
        self._reader_lock = threading.RLock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<streamlab.KafkaLab {SCHEME}{self.bootstrap}{' closed' if self._closed else ''}>"

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
        raise UnknownPartitionError(
            f"topic {topic!r} has partitions 0..{count - 1}; there is no partition {partition!r}",
            topic=topic,
            partition=partition if isinstance(partition, int) else None,
        )

    def _list_offsets(self, specs: dict[TopicPartition, Any]) -> dict[TopicPartition, int]:
        if not specs:
            return {}
        self._check_open()
        asked = {ck_partition(tp): spec for tp, spec in specs.items()}
        out: dict[TopicPartition, int] = {}
        for key, future in self._admin.list_offsets(asked, request_timeout=self.timeout).items():
            tp = TopicPartition(key.topic, key.partition)
            try:
                out[tp] = future.result(timeout=self.timeout + 5).offset
            except ck.KafkaException as exc:
                raise translate(
                    exc, topic=tp.topic, partition=tp.partition, context=f"listing offsets of {tp}"
                ) from exc
            except concurrent.futures.TimeoutError as exc:
                raise OperationTimeoutError(f"listing offsets of {tp} timed out", topic=tp.topic) from exc
        return out

    def _watermarks(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """(log start offset, high watermark) of each partition."""
        low = self._list_offsets(dict.fromkeys(tps, OffsetSpec.earliest()))
        high = self._list_offsets(dict.fromkeys(tps, OffsetSpec.latest()))
        return {tp: (low[tp], high[tp]) for tp in tps}

    def _offsets_for_time(self, tps: Sequence[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        """Per partition, the first offset whose record's timestamp is >= ``ms`` (else the end)."""
        marks = self._watermarks(tps)
        found = self._list_offsets(dict.fromkeys(tps, OffsetSpec.for_timestamp(ms))) if self._time_index else {}
        out: dict[TopicPartition, int] = {}
        for tp in tps:
            low, high = marks[tp]
            offset = found.get(tp, -1)
            if offset >= 0 or high <= low:
                out[tp] = high if offset < 0 else offset
                continue
            last = self._record_at(tp, high - 1)  # "none at or after ms": check it, the mock says so always
            if last is None or last[1] < ms:
                out[tp] = high
                continue
            self._time_index = False
            out[tp] = self._search_time(tp, low, high, ms)
        return out

    def _search_time(self, tp: TopicPartition, low: int, high: int, ms: int) -> int:
        while low < high:
            middle = (low + high) // 2
            record = self._record_at(tp, middle)
            if record is None:
                return high
            if record[1] >= ms:
                high = middle
            else:
                low = record[0] + 1
        return low

    # reading ----------------------------------------------------------------------------
    def _reader(self) -> ck.Consumer:
        if self._reader_handle is None:
            settings = {"group.id": f"streamlab-reader-{uuid.uuid4().hex}", "enable.auto.commit": False,
                        "enable.auto.offset.store": False, "fetch.wait.max.ms": 10}  # fmt: skip
            self._reader_handle = ck.Consumer(client_config(self.bootstrap, self.client_options, **settings))
        return self._reader_handle

    def _record_at(self, tp: TopicPartition, offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after ``offset``, if any arrives."""
        table = self._read({tp: (offset, offset + 1)}, desc="", first_only=True)
        if table.num_rows == 0:
            return None
        return int(table.column("offset")[0].as_py()), int(table.column("timestamp").cast(pa.int64())[0].as_py())

    def _read(
        self, ranges: Mapping[TopicPartition, tuple[int, int]], *, desc: str, first_only: bool = False
    ) -> pa.Table:
        """Records in [start, end) of each partition as one Arrow table (RECORD_SCHEMA + partition)."""
        pending = {tp: span for tp, span in ranges.items() if span[0] < span[1]}
        rows: dict[str, list[Any]] = {name: [] for name in ("partition", *RECORD_SCHEMA.names)}
        total = sum(end - start for start, end in pending.values())
        if pending:
            from tqdm.auto import tqdm

            with self._reader_lock, tqdm(total=total, disable=total < PROGRESS_FROM, desc=desc, unit="rec") as bar:
                reader = self._reader()
                assigned = [ck_partition(tp, start) for tp, (start, _) in pending.items()]
                reader.assign(assigned)
                try:
                    self._fill(reader, pending, rows, bar, first_only)
                finally:
                    reader.resume(assigned)  # a pause outlives unassign() in librdkafka
                    reader.unassign()
        return pa.table(
            {
                "partition": pa.array(rows["partition"], pa.int32()),
                "offset": pa.array(rows["offset"], pa.int64()),
                "timestamp": pa.array(rows["timestamp"], pa.int64()).cast(TIMESTAMP_TYPE),
                "key": pa.array(rows["key"], pa.binary()),
                "key_format": pa.array(rows["key_format"], pa.int8()),
                "value": pa.array(rows["value"], pa.binary()),
                "value_format": pa.array(rows["value_format"], pa.int8()),
                "headers": pa.array(rows["headers"], HEADER_TYPE),
            }
        )

    def _fill(
        self,
        reader: Any,
        pending: dict[TopicPartition, tuple[int, int]],
        rows: dict[str, list[Any]],
        bar: Any,
        first_only: bool,
    ) -> None:
        idle_since = time.monotonic()
        while pending:
            try:
                messages = next_batch(reader, 0.2, 1 if first_only else 10_000)
            except ck.KafkaException as exc:
                raise translate(exc, context="reading records") from exc
            if not messages:
                # Nothing left to fetch though the end is not reached: transaction markers or
                # compaction leave offsets without records, and the reader's position is past them.
                for p in reader.position([ck_partition(tp) for tp in pending]):
                    tp = TopicPartition(p.topic, p.partition)
                    if p.offset >= pending[tp][1]:
                        del pending[tp]
                if pending and time.monotonic() - idle_since > self.timeout:
                    raise OperationTimeoutError(f"no records arrived for {self.timeout} s from {sorted(pending)}")
                continue
            idle_since = time.monotonic()
            for msg in messages:
                if not check_message(msg):
                    continue
                tp = TopicPartition(msg.topic(), msg.partition())
                span = pending.get(tp)
                offset = msg.offset()
                if span is None or offset < span[0]:
                    continue  # a partition already finished, or a fetch from before assign()
                if offset >= span[1]:
                    del pending[tp]
                    continue
                key, key_fmt, value, value_fmt, headers = decode_message(msg)
                cells = (tp.partition, offset, msg.timestamp()[1], key, key_fmt, value, value_fmt,
                         [{"key": k, "value": v} for k, v in headers] or None)  # fmt: skip
                for column, cell in zip(rows.values(), cells, strict=True):
                    column.append(cell)
                bar.update(1)
                if first_only or offset >= span[1] - 1:
                    del pending[tp]
                    reader.pause([ck_partition(tp)])

    # topics -----------------------------------------------------------------------------
    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        config: Mapping[str, Any] | None = None,
        *,
        replication_factor: int | None = None,
    ) -> None:
        """Create a topic; ``config`` keys may use dots or underscores (``retention.ms``).
        ``replication_factor`` defaults to the cluster's default."""
        self._check_open()
        validate_topic_name(name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise InvalidPartitionsError(f"partitions must be a positive integer, got {partitions!r}")
        dotted = {str(k).replace("_", "."): v for k, v in (config or {}).items()}
        self.topic_admin.create(name, partitions, dotted, replication_factor)
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

    def alter_topic_config(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        self._topic_info(name)
        changed = self.topic_admin.alter(name, {str(k).replace("_", "."): v for k, v in config.items()})
        self._info.pop(name, None)
        return changed

    def delete_topic(self, name: str) -> None:
        self._topic_info(name, fresh=True)  # UnknownTopicError, as on the embedded broker
        self.topic_admin.delete(name)
        self._info.pop(name, None)
        self._wait_for_topic(name, exists=False)

    def topics(self) -> pd.DataFrame:
        """One row per topic: partitions, records (high watermark - log start), bytes (NaN), config."""
        listed = self._metadata().topics
        names = sorted(n for n, t in listed.items() if not n.startswith("__") and t.error is None)
        tps = [TopicPartition(n, p) for n in names for p in sorted(listed[n].partitions)]
        marks = self._watermarks(tps)
        configs = self.topic_admin.configs(names)
        rows = [
            {
                "name": n,
                "partitions": len(listed[n].partitions),
                "records": sum(high - low for tp, (low, high) in marks.items() if tp.topic == n),
                "bytes": np.nan,
                "config": configs.get(n, {}),
            }
            for n in names
        ]
        return pd.DataFrame(rows, columns=["name", "partitions", "records", "bytes", "config"])

    def offsets(self, topic: str) -> pd.DataFrame:
        tps = [TopicPartition(topic, p) for p in range(self._topic_info(topic, fresh=True).partitions)]
        marks = self._watermarks(tps)
        rows = [{"partition": tp.partition, "log_start_offset": marks[tp][0], "high_watermark": marks[tp][1]}
                for tp in tps]  # fmt: skip
        return pd.DataFrame(rows, columns=["partition", "log_start_offset", "high_watermark"])

    def apply_retention(self, *, now: Any = None) -> Any:
        raise UnsupportedOperationError("retention runs on the Kafka brokers (retention.ms, retention.bytes)")

    def roll(self, topic: str) -> None:
        raise UnsupportedOperationError("segments are rolled by the Kafka brokers (segment.bytes, segment.ms)")

    # clients ----------------------------------------------------------------------------
    def producer(self, **config: Any) -> KafkaProducer:
        return KafkaProducer(self, **config)

    def consumer(self, topics: Iterable[str] | str | None = None, **config: Any) -> KafkaConsumer:
        return KafkaConsumer(self, topics, **{**self.consumer_defaults, **config})

    def share_consumer(
        self,
        topics: Iterable[str] | str,
        *,
        group: str,
        lock_ms: int = 30_000,
        dead_letter_topic: str | None = None,
        delivery_count_limit: int = 5,
        client_id: str = "streamlab-share-consumer",
        **config: Any,
    ) -> KafkaShareConsumer:
        """A member of share group ``group`` (KIP-932), as on the embedded broker; the
        group's settings become group configs on the cluster (see
        :mod:`streamlab.kafka.share_consumer`)."""
        return KafkaShareConsumer(self, topics, group=group, lock_ms=lock_ms, dead_letter_topic=dead_letter_topic,
                                  delivery_count_limit=delivery_count_limit, client_id=client_id, **config)  # fmt: skip

    def share_state(self, group: str) -> pd.DataFrame:
        raise UnsupportedOperationError(
            "the state of each in-flight record of a share group is the embedded broker's: open the data "
            "directory with streamlab.connect(DIR) (with the server stopped) to see it"
        )

    def _adopt(self, client: KafkaProducer | KafkaConsumer) -> None:
        self._check_open()
        self._clients.add(client)

    def _release(self, client: KafkaProducer | KafkaConsumer) -> None:
        self._clients.discard(client)

    # consumer groups ------------------------------------------------------------------
    def groups(self) -> pd.DataFrame:
        # Consumer groups only (ListGroups without a type filter): share groups need the
        # embedded broker's view, as does their per-record state.
        columns = ["group", "type", "state", "generation", "members", "assignor"]
        listed = self._admin_call(self._admin.list_consumer_groups(request_timeout=self.timeout), "listing groups")
        if listed.errors and not listed.valid:
            raise translate(listed.errors[0], context="listing consumer groups (ListGroups)")
        ids = sorted(g.group_id for g in listed.valid)
        described = self._describe_groups(ids)
        rows = [
            {"group": g, "type": "classic", "state": _STATES.get(d.state.name, str(d.state)), "generation": pd.NA,
             "members": len(d.members), "assignor": d.partition_assignor or ""}
            for g, d in described.items()
        ]  # fmt: skip
        df = pd.DataFrame(rows, columns=columns)
        df["generation"] = df["generation"].astype("Int64")
        return df

    def _describe_groups(self, ids: list[str]) -> dict[str, Any]:
        if not ids:
            return {}
        futures = self._admin.describe_consumer_groups(ids, request_timeout=self.timeout)
        return {g: self._admin_call(f, f"describing group {g!r}") for g, f in sorted(futures.items())}

    def _admin_call(self, future: concurrent.futures.Future[Any], what: str) -> Any:
        try:
            return future.result(timeout=self.timeout + 5)
        except ck.KafkaException as exc:
            raise translate(exc, context=what) from exc
        except concurrent.futures.TimeoutError as exc:
            raise OperationTimeoutError(f"{what} timed out after {self.timeout} s") from exc

    def describe_group(self, group: str) -> pd.DataFrame:
        described = self._describe_groups([group]).get(group)
        rows = [
            {"member": m.member_id, "client_id": m.client_id, "host": m.host, "topic": tp.topic,
             "partition": tp.partition}
            for m in (described.members if described is not None else [])
            for tp in (m.assignment.topic_partitions if m.assignment else [])
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=["member", "client_id", "host", "topic", "partition"])

    def _committed(self, group: str, topics: Sequence[str] | None = None) -> dict[TopicPartition, int]:
        """The group's committed offsets on ``topics`` (default: all)."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        if topics is None:  # one request asks for all of them; the mock cluster answers it with nothing
            futures = self._admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=self.timeout
            )
            answer = self._admin_call(futures[group], f"reading the committed offsets of group {group!r}")
            found = {
                TopicPartition(p.topic, p.partition): p.offset for p in answer.topic_partitions or [] if p.offset >= 0
            }
            if found:
                return found
        listed = self._metadata().topics
        names = [t for t in (topics or sorted(listed)) if not t.startswith("__")]
        for name in names:
            if name not in listed:
                self._topic_info(name)  # raises UnknownTopicError
        asked = [ck.TopicPartition(n, p) for n in names for p in sorted(listed[n].partitions)]
        if not asked:
            return {}
        request = [ConsumerGroupTopicPartitions(group, asked)]
        futures = self._admin.list_consumer_group_offsets(request, request_timeout=self.timeout)
        answer = self._admin_call(futures[group], f"reading the committed offsets of group {group!r}")
        return {TopicPartition(p.topic, p.partition): p.offset for p in answer.topic_partitions if p.offset >= 0}

    def lag(self, group: str) -> pd.DataFrame:
        """Per partition: committed offset, end offset, lag in records and in time."""
        committed = self._committed(group)
        marks = self._watermarks(sorted(committed))
        rows = []
        for tp, offset in sorted(committed.items()):
            low, end = marks[tp]
            behind = max(end - max(offset, low), 0)
            time_lag_ms = 0
            if behind:
                oldest, newest = self._record_at(tp, max(offset, low)), self._record_at(tp, end - 1)
                time_lag_ms = newest[1] - oldest[1] if oldest and newest else 0
            rows.append({"topic": tp.topic, "partition": tp.partition, "committed": offset, "end_offset": end,
                         "lag": behind, "time_lag_ms": time_lag_ms})  # fmt: skip
        df = pd.DataFrame(rows, columns=["topic", "partition", "committed", "end_offset", "lag", "time_lag_ms"])
        df["time_lag"] = pd.to_timedelta(df["time_lag_ms"], unit="ms")
        return df.drop(columns="time_lag_ms")

    def rebalances(self, group: str) -> pd.DataFrame:
        raise UnsupportedOperationError(
            f"the full rebalance history of group {group!r} is recorded by the embedded broker, not by Kafka: "
            "run the group against streamlab.connect(DIR) or `streamlab serve --data DIR`, then open DIR with "
            "streamlab.connect(DIR) (with the server stopped) and call rebalances() there"
        )

    def reset_offsets(
        self, group: str, to: Any = "earliest", *, dry_run: bool = True, topics: list[str] | None = None
    ) -> pd.DataFrame:
        """Preview moving ``group``'s offsets to "earliest", "latest", a time or {tp: offset};
        ``dry_run=False`` applies it (only while the group has no active members)."""
        current = self._committed(group, topics)
        targets: dict[TopicPartition, int] = {}
        if isinstance(to, dict):
            for tp, offset in to.items():
                if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                    raise InvalidOffsetError(f"offset for {tp} must be a non-negative integer, got {offset!r}")
                self._check_partition(tp.topic, tp.partition)
                targets[tp] = offset
        else:
            chosen = topics or sorted({tp.topic for tp in current})
            tps = [TopicPartition(t, p) for t in chosen for p in range(self._topic_info(t).partitions)]
            if to in ("earliest", "latest"):
                targets = {tp: marks[0 if to == "earliest" else 1] for tp, marks in self._watermarks(tps).items()}
            else:
                targets = self._offsets_for_time(tps, to_ms(to, what="to"))
        marks = self._watermarks(sorted(targets))
        rows, new_offsets = [], []
        for tp, new in sorted(targets.items()):
            low, high = marks[tp]
            new = min(max(new, low), high)
            old = current.get(tp)
            base = old if old is not None else high
            rows.append({"topic": tp.topic, "partition": tp.partition, "current": old, "new": new,
                         "replayed": max(base - new, 0), "skipped": max(new - base, 0)})  # fmt: skip
            new_offsets.append(ck.TopicPartition(tp.topic, tp.partition, new))
        if not dry_run and new_offsets:
            self._apply_offsets(group, new_offsets)
        return pd.DataFrame(rows, columns=["topic", "partition", "current", "new", "replayed", "skipped"])

    def _apply_offsets(self, group: str, offsets: list[ck.TopicPartition]) -> None:
        from confluent_kafka import ConsumerGroupTopicPartitions

        try:
            described = self._describe_groups([group]).get(group)
        except UnsupportedOperationError:
            described = None  # no DescribeGroups: the broker refuses a commit to an active group anyway
        if described is not None and described.members:
            raise GroupNotEmptyError(
                f"group {group!r} has {len(described.members)} active members; close its consumers before resetting"
            )
        request = [ConsumerGroupTopicPartitions(group, offsets)]
        futures = self._admin.alter_consumer_group_offsets(request, request_timeout=self.timeout)
        try:
            answer = self._admin_call(futures[group], f"resetting the offsets of group {group!r}")
            for p in answer.topic_partitions:
                if p.error is not None:
                    raise translate(p.error, topic=p.topic, partition=p.partition)
        except UnknownMemberError as exc:  # how a broker refuses a commit from outside an active group
            raise GroupNotEmptyError(
                f"group {group!r} has active members (the broker refused the commit); close its consumers first"
            ) from exc

    # analytics --------------------------------------------------------------------------
    def replay(
        self,
        topic: str,
        start: Any = None,
        end: Any = None,
        partitions: Sequence[int] | None = None,
        *,
        raw: bool = False,
        headers: bool = False,
    ) -> pd.DataFrame:
        """Records of ``topic`` from ``start`` (inclusive) to ``end`` (exclusive), as pandas.

        ``start``/``end`` are offsets (int) or times (datetime, ISO string). JSON-object
        values are spread into a column per field; ``raw=True`` adds the ``value`` column.
        Rows are ordered by partition, then offset. Large slices show a progress bar.
        """
        count = self._topic_info(topic, fresh=True).partitions
        if partitions is None:
            chosen = list(range(count))
        else:
            chosen = [partitions] if isinstance(partitions, int) else list(partitions)
            for p in chosen:
                self._check_partition(topic, p)
        bounds = query.Bounds(partitions=chosen, **replay_bound("start", start), **replay_bound("end", end))
        table = self._read_topic(topic, bounds)
        con = duckdb.connect()
        try:
            name = f"_kafka_{next(_ids)}"
            con.register(name, table)
            view = query.view_sql(con, f"SELECT * FROM {name} WHERE {bounds.where()}", raw=raw, headers=headers,
                                  formats=True)  # fmt: skip
            result = con.sql(f'SELECT * FROM ({view}) ORDER BY partition, "offset"').to_arrow_table()
        finally:
            con.close()
        return replay_dataframe(result, raw=raw)

    def _read_topic(self, topic: str, bounds: query.Bounds) -> pa.Table:
        """The stored rows of ``bounds``'s partitions of ``topic``, JSON objects expanded."""
        tps = [TopicPartition(topic, p) for p in (bounds.partitions or [])]
        marks = self._watermarks(tps)
        starts = {tp: max(low, bounds.start_offset or 0) for tp, (low, _) in marks.items()}
        ends = {
            tp: high if bounds.end_offset is None else min(high, bounds.end_offset) for tp, (_, high) in marks.items()
        }
        if bounds.start_ms is not None:
            starts = {tp: max(o, starts[tp]) for tp, o in self._offsets_for_time(tps, bounds.start_ms).items()}
        if bounds.end_ms is not None:
            ends = {tp: min(o, ends[tp]) for tp, o in self._offsets_for_time(tps, bounds.end_ms).items()}
        table = self._read({tp: (starts[tp], ends[tp]) for tp in tps}, desc=f"replay {topic}")
        fields = expand_json_objects(table) if table.num_rows else None
        return table if fields is None else table.append_column(FIELDS_COLUMN, fields)

    def sql(self, statement: str) -> pd.DataFrame:
        """Run DuckDB SQL where every topic the statement names is a table (quote ``"offset"``).

        On Kafka each named topic is replayed whole into memory first, then queried with
        the same views as the embedded broker.
        """
        listed = {n for n in self._metadata().topics if not n.startswith("__")}
        by_lower = {n.lower(): n for n in listed}
        named = {by_lower.get(n.lower(), n) for n in duckdb.get_table_names(statement)}
        con = duckdb.connect()
        try:
            for topic in sorted(named & listed):
                count = self._topic_info(topic, fresh=True).partitions
                source = f"_kafka_{next(_ids)}"
                con.register(source, self._read_topic(topic, query.Bounds(partitions=list(range(count)))))
                view = query.view_sql(con, f"SELECT * FROM {source}")
                con.execute(f"CREATE OR REPLACE TEMP VIEW {query.quote(topic)} AS {view}")
            return con.sql(statement).to_arrow_table().to_pandas()
        finally:
            con.close()

    # lifecycle --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"this lab is closed; connect again with streamlab.connect({self.target!r})")

    def close(self) -> None:
        """Close every producer (sending what is queued) and consumer of this lab. Safe to call twice."""
        if self._closed:
            return
        try:
            for client in list(self._clients):
                try:
                    client.close()
                except StreamlabError as exc:
                    log.warning("closing %r: %s", client, exc)
            if self._reader_handle is not None:
                self._reader_handle.close()
        finally:
            self._closed = True

    def __enter__(self) -> KafkaLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
