"""What the topic views show: :class:`TopicBrowserState` (topics, partitions, offsets,
sizes, retention and a slice of records) and :class:`TailState` (the newest records of
each partition, filtered).

Both read one topic through the client API; the group views live in
:mod:`streamlab.notebook.group_state`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from streamlab.errors import StreamlabError
from streamlab.front.lab import Lab
from streamlab.model.schemas.wire import is_confluent
from streamlab.model.types import Record, TopicPartition
from streamlab.notebook.state_helpers import maybe_int, num, records_of, short, stamp

__all__ = ["PartitionInfo", "TailState", "TopicBrowserState", "TopicInfo"]


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    records: int
    bytes: int | None  # None where the Lab cannot tell (a Kafka cluster without DescribeLogDirs)
    retention_ms: int
    retention_bytes: int
    cleanup_policy: str


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    log_start: int
    end: int
    bytes: int | None  # None where the Lab does not expose per-partition sizes

    @property
    def records(self) -> int:
        return self.end - self.log_start


def _partition_bytes(lab: Lab, topic: str, partition: int) -> int | None:
    try:
        return lab.backend.partition_bytes(topic, partition)  # None where the backend cannot tell
    except StreamlabError:
        return None


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    kept = [f for f in frames if len(f)]
    if not kept:
        return frames[0] if frames else pd.DataFrame()
    return kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)


class TopicBrowserState:
    """Topics with their partitions, offsets, sizes and retention; a slice of records."""

    def __init__(self, lab: Lab, topic: str | None = None, *, limit: int = 20) -> None:
        self.lab = lab
        self.topic = topic
        self.partition: int | None = None
        self.start: Any = None
        self.end: Any = None
        self.limit = limit
        self.topics: list[TopicInfo] = []
        self.partitions: list[PartitionInfo] = []
        self.preview = pd.DataFrame()

    def select(
        self, topic: str | None = None, partition: int | None = None, start: Any = None, end: Any = None
    ) -> None:
        """Choose the slice: a topic, one partition (None: all) and an offset or time range
        (``start`` inclusive, ``end`` exclusive; offsets are ints, times datetimes or ISO text)."""
        if topic is not None:
            self.topic = topic
        self.partition, self.start, self.end = partition, start, end
        self.refresh()

    def refresh(self) -> None:
        table = self.lab.topics()
        self.topics = [
            TopicInfo(str(r["name"]), int(r["partitions"]), int(r["records"]), maybe_int(r["bytes"]),
                      int(r["config"].get("retention.ms", -1)), int(r["config"].get("retention.bytes", -1)),
                      str(r["config"].get("cleanup.policy", "delete")))
            for r in records_of(table)
        ]  # fmt: skip
        names = [t.name for t in self.topics]
        if self.topic not in names:
            self.topic = names[0] if names else None
        if self.topic is None:
            self.partitions, self.preview = [], pd.DataFrame()
            return
        offsets = self.lab.offsets(self.topic)
        self.partitions = [
            PartitionInfo(int(r["partition"]), int(r["log_start_offset"]), int(r["high_watermark"]),
                          _partition_bytes(self.lab, self.topic, int(r["partition"])))
            for r in records_of(offsets)
        ]  # fmt: skip
        self.preview = self._preview()

    def _chosen(self) -> list[PartitionInfo]:
        return [p for p in self.partitions if self.partition is None or p.partition == self.partition]

    def _by_offset(self) -> bool:
        return all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in (self.start, self.end))

    def _preview(self) -> pd.DataFrame:
        assert self.topic is not None
        if not self._by_offset():  # a time range: its first records
            return self.lab.replay(self.topic, self.start, self.end, [p.partition for p in self._chosen()]).head(
                self.limit
            )
        frames = []
        for p in self._chosen():  # an offset range: its newest records in each partition
            hi = min(p.end, self.end) if self.end is not None else p.end
            lo = max(p.log_start, self.start or 0, hi - self.limit)
            if lo < hi:
                frames.append(self.lab.replay(self.topic, lo, hi, [p.partition]))
        return _concat(frames)

    def to_dataframe(self, *, progress: bool | None = None, chunk_size: int = 100_000) -> pd.DataFrame:
        """The whole selected slice as pandas (a progress bar for large slices)."""
        from tqdm.auto import tqdm

        if self.topic is None:
            raise StreamlabError("no topic selected: create a topic, then select(topic=...)")
        if not self.partitions:
            self.refresh()
        chosen = self._chosen()
        total = sum(p.records for p in chosen)
        frames: list[pd.DataFrame] = []
        show = progress if progress is not None else total >= 200_000
        # no tqdm object at all unless shown: even a disabled one starts tqdm's monitor thread
        bar = tqdm(total=total, desc=f"replay {self.topic}", unit="rec") if show else None
        try:
            for p in chosen:
                if self._by_offset():
                    lo = max(p.log_start, self.start or 0)
                    hi = min(p.end, self.end) if self.end is not None else p.end
                    for at in range(lo, hi, chunk_size):
                        frames.append(self.lab.replay(self.topic, at, min(at + chunk_size, hi), [p.partition]))
                        if bar is not None:
                            bar.update(len(frames[-1]))
                else:
                    frames.append(self.lab.replay(self.topic, self.start, self.end, [p.partition]))
                    if bar is not None:
                        bar.update(p.records)
        finally:
            if bar is not None:
                bar.close()
        if not frames:
            return self.lab.replay(self.topic, 0, 0)
        return _concat(frames)

    def summary(self) -> str:
        lines = [f"{len(self.topics)} topic(s)"]
        for t in self.topics:
            lines.append(f"  {t.name}: {t.partitions} partition(s), {num(t.records)} records, "
                         f"retention.ms={t.retention_ms}, cleanup.policy={t.cleanup_policy}")  # fmt: skip
        if self.topic is not None:
            lines.append(f"topic {self.topic}:")
            lines += [f"  partition {p.partition}: offsets {num(p.log_start)}..{num(p.end)} ({num(p.records)} records)"
                      for p in self.partitions]  # fmt: skip
            where = "all partitions" if self.partition is None else f"partition {self.partition}"
            lo, hi = ("start" if self.start is None else self.start), ("end" if self.end is None else self.end)
            span = f"from {lo} to {hi}"
            shown = self.preview
            lines.append(f"slice: {where}, {span}: showing {len(shown)} record(s)")
            for row in records_of(shown.head(5)):
                lines.append(f"  p{row['partition']}@{row['offset']} key={short(row.get('key'), 20)}")
        return "\n".join(lines)


# live tail --------------------------------------------------------------------------------
def _matches(text: str | None, record_text: str) -> bool:
    return not text or text.lower() in record_text.lower()


class TailState:
    """The newest records of a topic, per partition, kept up to date by :meth:`refresh`.

    ``filter`` is a substring matched against key or value text, or a callable taking a
    :class:`~streamlab.Record`; ``key_filter`` and ``value_filter`` match one side only.
    On the first refresh (and after a filter change) the last ``scan`` records of each
    partition are read; after that only what is new.

    ``show_transactions``: each record shown says whether its transaction committed (or it
    had none), aborted or is still open, and the COMMIT/ABORT markers between the records
    shown are listed (:meth:`markers`; none on ``kafka://``, whose clients hide them).
    """

    def __init__(
        self,
        lab: Lab,
        topic: str,
        *,
        per_partition: int = 5,
        filter: str | Callable[[Record], bool] | None = None,
        key_filter: str | None = None,
        value_filter: str | None = None,
        scan: int = 1000,
        poll_timeout: float = 0.2,
        show_transactions: bool = False,
    ) -> None:
        self.lab, self.topic, self.poll_timeout = lab, topic, poll_timeout
        self.show_transactions = show_transactions
        self._statuses: dict[tuple[int, int], str] = {}  # (partition, offset) -> aborted / open
        self._markers: dict[int, list[tuple[int, str, int | None, int | None]]] = {}
        self.per_partition, self.scan = per_partition, scan
        self.filter, self.key_filter, self.value_filter = filter, key_filter, value_filter
        self.ends: dict[int, int] = {}
        self.seen = 0
        # why a shown record's key or value stayed raw, by (partition, offset): a framed
        # payload the registry could not decode; every other record still shows decoded
        self.errors: dict[tuple[int, int], str] = {}
        self._buffers: dict[int, deque[Record]] = {}
        self._consumer: Any = None
        self._lock = threading.Lock()

    def set_filter(
        self,
        filter: str | Callable[[Record], bool] | None = None,
        *,
        key_filter: str | None = None,
        value_filter: str | None = None,
    ) -> None:
        with self._lock:
            self.filter, self.key_filter, self.value_filter = filter, key_filter, value_filter
            self._reset()
        self.refresh()

    def matches(self, record: Record) -> bool:
        key, value = short(record.key, 10_000), short(record.value, 10_000)
        if callable(self.filter):
            if not self.filter(record):
                return False
        elif self.filter and not (_matches(self.filter, key) or _matches(self.filter, value)):
            return False
        return _matches(self.key_filter, key) and _matches(self.value_filter, value)

    def _reset(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        self._consumer, self._buffers, self.seen, self.errors = None, {}, 0, {}

    def refresh(self, *, max_records: int = 50_000) -> None:
        with self._lock:
            offsets = self.lab.offsets(self.topic)
            rows = records_of(offsets)
            self.ends = {int(r["partition"]): int(r["high_watermark"]) for r in rows}
            if self._consumer is None or len(self.ends) != len(self._buffers):
                self._reset()
                self._consumer = self.lab.consumer(None, auto_offset_reset="latest", enable_auto_commit=False,
                                                   client_id="streamlab-tail")  # fmt: skip
                tps = [TopicPartition(self.topic, p) for p in sorted(self.ends)]
                self._consumer.assign(tps)
                for tp, r in zip(tps, sorted(rows, key=lambda r: int(r["partition"])), strict=True):
                    self._consumer.seek(tp, max(int(r["log_start_offset"]), int(r["high_watermark"]) - self.scan))
                self._buffers = {p: deque(maxlen=self.per_partition) for p in sorted(self.ends)}
            read, wait = 0, self.poll_timeout  # a Kafka client fetches in the background: give it a moment
            while read < max_records:
                records = self._consumer.poll(timeout=wait, max_records=5000)
                wait = 0
                if not records:
                    break
                read += len(records)
                for record in records:
                    if self.matches(record):
                        self._buffers[record.partition].append(record)
                        self.seen += 1
                        error = self._decode_error(record)
                        if error is not None:
                            self.errors[record.partition, record.offset] = error
            shown = {(r.partition, r.offset) for buffer in self._buffers.values() for r in buffer}
            self.errors = {at: e for at, e in self.errors.items() if at in shown}
            # the end offsets shown are read after polling, and never below a record shown:
            # read before, they said "end offset 5" above records at offsets 20-24
            after = {int(r["partition"]): int(r["high_watermark"]) for r in records_of(self.lab.offsets(self.topic))}
            for p, buffer in self._buffers.items():
                newest = buffer[-1].offset + 1 if buffer else 0
                self.ends[p] = max(after.get(p, 0), self.ends.get(p, 0), newest)
            if self.show_transactions:
                self._read_transactions()

    def _read_transactions(self) -> None:
        """Statuses of the records shown and the markers from the oldest shown on."""
        self._statuses, self._markers = {}, {}
        for p, buffer in self._buffers.items():
            if not buffer:
                continue
            rows = self.lab.backend.transaction_rows(self.topic, p, buffer[0].offset, self.ends[p]).to_pylist()
            self._statuses.update({(p, r["offset"]): r["transaction"] for r in rows if r["transaction"] != "marker"})
            self._markers[p] = [(r["offset"], r["marker"], r["producer_id"], r["producer_epoch"])
                                for r in rows if r["transaction"] == "marker"]  # fmt: skip

    def transaction(self, record: Record) -> str | None:
        """A shown record's transaction: "committed", "aborted" or "open" (None unless ``show_transactions``)."""
        if not self.show_transactions:
            return None
        return self._statuses.get((record.partition, record.offset), "committed")

    def markers(self, partition: int) -> list[tuple[int, str, int | None, int | None]]:
        """(offset, "COMMIT"/"ABORT", producer id, epoch) of the markers from the oldest record shown on."""
        with self._lock:
            return list(self._markers.get(partition, []))

    def _decode_error(self, record: Record) -> str | None:
        """Why ``record``'s Confluent-framed value (or key) was left undecoded, if it was."""
        for side, data in (("value", record.value), ("key", record.key)):
            if isinstance(data, bytes) and is_confluent(data) and self.lab.backend.has_schema_registry():
                try:
                    self.lab.schemas.decode(data)
                except StreamlabError as exc:
                    return f"{side}: {exc}"
        return None

    def error(self, record: Record) -> str | None:
        """Why ``record`` (one :meth:`newest` shows) is shown raw, or None."""
        return self.errors.get((record.partition, record.offset))

    def newest(self) -> dict[int, list[Record]]:
        """Partition -> its newest matching records, oldest first."""
        with self._lock:
            return {p: list(b) for p, b in self._buffers.items()}

    def close(self) -> None:
        with self._lock:
            self._reset()

    def _filter_text(self) -> str:
        parts = []
        if self.filter is not None:
            parts.append(f"filter {self.filter!r}" if isinstance(self.filter, str) else "filter <function>")
        if self.key_filter:
            parts.append(f"key ~ {self.key_filter!r}")
        if self.value_filter:
            parts.append(f"value ~ {self.value_filter!r}")
        return ", ".join(parts) or "no filter"

    def summary(self) -> str:
        lines = [f"tail of {self.topic} (newest {self.per_partition} per partition, {self._filter_text()})"]
        for p, records in self.newest().items():
            lines.append(f"  partition {p} (end offset {num(self.ends.get(p, 0))}): {len(records)} shown")
            marks = self.markers(p) if self.show_transactions else []
            for r in records:
                while marks and marks[0][0] < r.offset:
                    lines.append(_marker_line(*marks.pop(0)))
                lines.append(f"    {r.offset:>6}  {stamp(r.timestamp)}  key={short(r.key, 16)}  {short(r.value, 56)}")
                if self.show_transactions:
                    lines[-1] += f"  [{self.transaction(r)}]"
                if (error := self.error(r)) is not None:
                    lines.append(f"            not decoded: {error}")
            lines.extend(_marker_line(*m) for m in marks)
        return "\n".join(lines)


def _marker_line(offset: int, kind: str, producer_id: int | None, epoch: int | None) -> str:
    return f"    {offset:>6}  {kind} marker (producer id {producer_id}, epoch {epoch})"
