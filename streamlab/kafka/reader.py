"""Reading a Kafka cluster's partitions for :class:`~streamlab.kafka.backend.KafkaBackend`: offsets
(ListOffsets, and the first offset at or after a time) and ranges of records read into
Arrow tables, the source of ``replay``, ``sql``, ``lag`` and offset resets.

Separate from the lab because it has its own state: one assign-only consumer shared by
every read (and the lock that serialises them), and whether the cluster keeps a time
index (librdkafka's mock cluster does not: times are then found by a binary search).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import confluent_kafka as ck
import pyarrow as pa
from confluent_kafka import IsolationLevel
from confluent_kafka.admin import AdminClient, OffsetSpec

from streamlab.errors import OperationTimeoutError
from streamlab.kafka import client_config, translate
from streamlab.kafka.messages import check_message, ck_partition, decode_message, next_batch
from streamlab.model.fields import expand_json_objects
from streamlab.model.schema import HEADER_TYPE, RECORD_SCHEMA, TIMESTAMP_TYPE
from streamlab.model.types import TopicPartition
from streamlab.model.views import FIELDS_COLUMN, Bounds

__all__ = ["KafkaReader"]


class KafkaReader:
    """Offsets and records of a cluster's partitions, read outside any consumer group."""

    def __init__(
        self,
        admin: AdminClient,
        bootstrap: str,
        client_options: Mapping[str, Any],
        *,
        timeout: float,
        check_open: Callable[[], None],
    ) -> None:
        self._admin, self.timeout, self._check_open = admin, timeout, check_open
        self._bootstrap, self._client_options = bootstrap, client_options
        self.time_index = True  # until the cluster shows it answers ListOffsets-by-time with -1 regardless
        self._handles: dict[bool, ck.Consumer] = {}  # by read_committed
        self._lock = threading.RLock()

    # offsets ----------------------------------------------------------------------------
    def list_offsets(self, specs: dict[TopicPartition, Any], *, committed: bool = False) -> dict[TopicPartition, int]:
        """``committed``: as a read_committed reader sees them (latest is the last stable offset)."""
        if not specs:
            return {}
        self._check_open()
        asked = {ck_partition(tp): spec for tp, spec in specs.items()}
        out: dict[TopicPartition, int] = {}
        isolation = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
        for key, future in self._admin.list_offsets(
            asked, isolation_level=isolation, request_timeout=self.timeout
        ).items():
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

    def watermarks(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """(log start offset, high watermark) of each partition."""
        low = self.list_offsets(dict.fromkeys(tps, OffsetSpec.earliest()))
        high = self.list_offsets(dict.fromkeys(tps, OffsetSpec.latest()))
        return {tp: (low[tp], high[tp]) for tp in tps}

    def offsets_for_time(self, tps: Sequence[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        """Per partition, the first offset whose record's timestamp is >= ``ms`` (else the end)."""
        marks = self.watermarks(tps)
        found = self.list_offsets(dict.fromkeys(tps, OffsetSpec.for_timestamp(ms))) if self.time_index else {}
        out: dict[TopicPartition, int] = {}
        for tp in tps:
            low, high = marks[tp]
            offset = found.get(tp, -1)
            if offset >= 0 or high <= low:
                out[tp] = high if offset < 0 else offset
                continue
            last = self.record_at(tp, high - 1)  # "none at or after ms": check it, the mock says so always
            if last is None or last[1] < ms:
                out[tp] = high
                continue
            self.time_index = False
            out[tp] = self._search_time(tp, low, high, ms)
        return out

    def _search_time(self, tp: TopicPartition, low: int, high: int, ms: int) -> int:
        while low < high:
            middle = (low + high) // 2
            record = self.record_at(tp, middle)
            if record is None:
                return high
            if record[1] >= ms:
                high = middle
            else:
                low = record[0] + 1
        return low

    # records ----------------------------------------------------------------------------
    def _reader(self, committed: bool) -> ck.Consumer:
        if committed not in self._handles:
            settings = {"group.id": f"streamlab-reader-{uuid.uuid4().hex}", "enable.auto.commit": False,
                        "enable.auto.offset.store": False, "fetch.wait.max.ms": 10,
                        "isolation.level": "read_committed" if committed else "read_uncommitted"}  # fmt: skip
            self._handles[committed] = ck.Consumer(client_config(self._bootstrap, self._client_options, **settings))
        return self._handles[committed]

    def record_at(self, tp: TopicPartition, offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after ``offset``, if any arrives."""
        table = self.read({tp: (offset, offset + 1)}, first_only=True)
        if table.num_rows == 0:
            return None
        return int(table.column("offset")[0].as_py()), int(table.column("timestamp").cast(pa.int64())[0].as_py())

    def read_topic(
        self, topic: str, bounds: Bounds, *, progress: Callable[[int], object] | None, committed: bool = True
    ) -> pa.Table:
        """The stored rows of ``bounds``'s partitions of ``topic``, JSON objects expanded;
        ``progress`` is called with each record count read (for the front's progress bar).
        ``committed``: as a read_committed consumer reads them, up to the last stable offset."""
        tps = [TopicPartition(topic, p) for p in (bounds.partitions or [])]
        marks = self.watermarks(tps)
        starts = {tp: max(low, bounds.start_offset or 0) for tp, (low, _) in marks.items()}
        # A read_committed reader ends at the last stable offset, never waiting on a
        # transaction still open (the embedded replay does the same).
        latest = self.list_offsets(dict.fromkeys(tps, OffsetSpec.latest()), committed=True) if committed else {
            tp: high for tp, (_, high) in marks.items()}  # fmt: skip
        ends = {tp: high if bounds.end_offset is None else min(high, bounds.end_offset) for tp, high in latest.items()}
        if bounds.start_ms is not None:
            starts = {tp: max(o, starts[tp]) for tp, o in self.offsets_for_time(tps, bounds.start_ms).items()}
        if bounds.end_ms is not None:
            ends = {tp: min(o, ends[tp]) for tp, o in self.offsets_for_time(tps, bounds.end_ms).items()}
        table = self.read({tp: (starts[tp], ends[tp]) for tp in tps}, progress=progress, committed=committed)
        fields = expand_json_objects(table) if table.num_rows else None
        return table if fields is None else table.append_column(FIELDS_COLUMN, fields)

    def read(
        self,
        ranges: Mapping[TopicPartition, tuple[int, int]],
        *,
        progress: Callable[[int], object] | None = None,
        first_only: bool = False,
        committed: bool = True,
    ) -> pa.Table:
        """Records in [start, end) of each partition as one Arrow table (RECORD_SCHEMA + partition)."""
        pending = {tp: span for tp, span in ranges.items() if span[0] < span[1]}
        rows: dict[str, list[Any]] = {name: [] for name in ("partition", *RECORD_SCHEMA.names)}
        if pending:
            with self._lock:
                reader = self._reader(committed)
                assigned = [ck_partition(tp, start) for tp, (start, _) in pending.items()]
                reader.assign(assigned)
                try:
                    self._fill(reader, pending, rows, progress or _ignore, first_only)
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
        progress: Callable[[int], object],
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
                progress(1)
                if first_only or offset >= span[1] - 1:
                    del pending[tp]
                    reader.pause([ck_partition(tp)])

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


def _ignore(_count: int) -> None:
    """No progress bar."""
