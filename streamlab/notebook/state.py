"""What the notebook widgets show, as plain Python objects.

Each state object pulls from a Lab in :meth:`refresh` and says what it holds in
:meth:`summary`, a short deterministic text that tests and nbval compare. The widgets in
:mod:`streamlab.notebook.widgets` only render these objects, so everything here runs and
is tested without a browser or a kernel.

Any Lab-like object works (the embedded :class:`streamlab.Lab`, a ``kafka://`` Lab): the
states use only the client API (``topics``, ``offsets``, ``producer``, ``consumer``,
``groups``, ``describe_group``, ``lag``, ``replay``). Rebalance history is recorded by the
embedded broker; elsewhere the timeline shows the current members and says why there is
no history.
"""

from __future__ import annotations

import atexit
import json
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pandas as pd

from streamlab.errors import ClosedError, StreamlabError
from streamlab.model.types import Record, RecordMetadata, TopicPartition

__all__ = [
    "PALETTE",
    "ConsumerPool",
    "Generation",
    "LabLike",
    "LagState",
    "PartitionInfo",
    "PartitionLag",
    "ProducerPanelState",
    "RebalanceTimelineState",
    "Sent",
    "TailState",
    "Ticker",
    "TopicBrowserState",
    "TopicInfo",
    "colors_for",
    "member_label",
]


class LabLike(Protocol):
    """The part of :class:`streamlab.Lab` the notebook layer uses."""

    def topics(self) -> pd.DataFrame: ...
    def offsets(self, topic: str) -> pd.DataFrame: ...
    def producer(self, **config: Any) -> Any: ...
    def consumer(self, topics: Any = None, **config: Any) -> Any: ...
    def groups(self) -> pd.DataFrame: ...
    def describe_group(self, group: str) -> pd.DataFrame: ...
    def lag(self, group: str) -> pd.DataFrame: ...
    def replay(
        self,
        topic: str,
        start: Any = None,
        end: Any = None,
        partitions: Sequence[int] | None = None,
        *,
        raw: bool = False,
        headers: bool = False,
    ) -> pd.DataFrame: ...


# helpers ----------------------------------------------------------------------------------
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_MEMBER_ID = re.compile(rf"([\w.\-]+?)-(?:{_UUID}|\d+-[0-9a-f]{{8}})(?![\w\-])")


def member_label(member_id: str) -> str:
    """A member's client id. Member ids are ``<client_id>-<uuid>`` (as Kafka makes them) and
    the random tail would make every printed history different."""
    match = _MEMBER_ID.fullmatch(member_id)
    return match.group(1) if match else member_id


def _label_text(text: str) -> str:
    return _MEMBER_ID.sub(lambda m: m.group(1), text)


# matplotlib's tab10: the same member has the same colour in widgets and plots
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def colors_for(labels: Sequence[str]) -> dict[str, str]:
    """A colour per member label, stable for a given set of labels (sorted order)."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(set(labels)))}


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame's rows as plain dicts (what the states read from the Lab's tables)."""
    return [{str(k): v for k, v in row.items()} for row in df.to_dict("records")]


def _maybe_int(value: Any) -> int | None:
    """An int, or None for the NaN/NA a Lab uses for what it cannot tell."""
    return None if value is None or pd.isna(value) else int(value)


def _n(value: int) -> str:
    return f"{value:,}"


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _stamp(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Ticker:
    """Calls ``fn`` every ``interval`` seconds in a daemon thread until :meth:`stop`.

    An exception from ``fn`` goes to ``on_error``; ticking goes on unless the broker is
    closed (then there is nothing left to show) or ``on_error`` returns False.
    """

    def __init__(
        self,
        fn: Callable[[], None],
        interval: float,
        *,
        name: str = "streamlab-ticker",
        on_error: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self.fn, self.interval, self.name, self.on_error = fn, interval, name, on_error
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        _tickers.add(self)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.fn()
            except Exception as exc:
                self.error = exc
                keep_going = self.on_error(exc) if self.on_error else True
                if isinstance(exc, ClosedError) or not keep_going:
                    return

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


_tickers: weakref.WeakSet[Ticker] = weakref.WeakSet()


@atexit.register
def _stop_tickers() -> None:
    """Stop every ticker before the interpreter (or kernel) shuts down under them."""
    for ticker in list(_tickers):
        ticker.stop(timeout=1)


# topic browser ----------------------------------------------------------------------------
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


def _partition_bytes(lab: LabLike, topic: str, partition: int) -> int | None:
    broker = getattr(lab, "broker", None)  # the embedded broker knows its files
    try:
        return int(broker.log(topic, partition).size_bytes()) if broker is not None else None
    except (AttributeError, StreamlabError):
        return None


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    kept = [f for f in frames if len(f)]
    if not kept:
        return frames[0] if frames else pd.DataFrame()
    return kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)


class TopicBrowserState:
    """Topics with their partitions, offsets, sizes and retention; a slice of records."""

    def __init__(self, lab: LabLike, topic: str | None = None, *, limit: int = 20) -> None:
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
            TopicInfo(str(r["name"]), int(r["partitions"]), int(r["records"]), _maybe_int(r["bytes"]),
                      int(r["config"].get("retention.ms", -1)), int(r["config"].get("retention.bytes", -1)),
                      str(r["config"].get("cleanup.policy", "delete")))
            for r in _rows(table)
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
            for r in _rows(offsets)
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
            lines.append(f"  {t.name}: {t.partitions} partition(s), {_n(t.records)} records, "
                         f"retention.ms={t.retention_ms}, cleanup.policy={t.cleanup_policy}")  # fmt: skip
        if self.topic is not None:
            lines.append(f"topic {self.topic}:")
            lines += [f"  partition {p.partition}: offsets {_n(p.log_start)}..{_n(p.end)} ({_n(p.records)} records)"
                      for p in self.partitions]  # fmt: skip
            where = "all partitions" if self.partition is None else f"partition {self.partition}"
            lo, hi = ("start" if self.start is None else self.start), ("end" if self.end is None else self.end)
            span = f"from {lo} to {hi}"
            shown = self.preview
            lines.append(f"slice: {where}, {span}: showing {len(shown)} record(s)")
            for row in _rows(shown.head(5)):
                lines.append(f"  p{row['partition']}@{row['offset']} key={_short(row.get('key'), 20)}")
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
    """

    def __init__(
        self,
        lab: LabLike,
        topic: str,
        *,
        per_partition: int = 5,
        filter: str | Callable[[Record], bool] | None = None,
        key_filter: str | None = None,
        value_filter: str | None = None,
        scan: int = 1000,
        poll_timeout: float = 0.2,
    ) -> None:
        self.lab, self.topic, self.poll_timeout = lab, topic, poll_timeout
        self.per_partition, self.scan = per_partition, scan
        self.filter, self.key_filter, self.value_filter = filter, key_filter, value_filter
        self.ends: dict[int, int] = {}
        self.seen = 0
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
        key, value = _short(record.key, 10_000), _short(record.value, 10_000)
        if callable(self.filter):
            if not self.filter(record):
                return False
        elif self.filter and not (_matches(self.filter, key) or _matches(self.filter, value)):
            return False
        return _matches(self.key_filter, key) and _matches(self.value_filter, value)

    def _reset(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        self._consumer, self._buffers, self.seen = None, {}, 0

    def refresh(self, *, max_records: int = 50_000) -> None:
        with self._lock:
            offsets = self.lab.offsets(self.topic)
            rows = _rows(offsets)
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
            lines.append(f"  partition {p} (end offset {_n(self.ends.get(p, 0))}): {len(records)} shown")
            lines += [f"    {r.offset:>6}  {_stamp(r.timestamp)}  key={_short(r.key, 16)}  {_short(r.value, 56)}"
                      for r in records]  # fmt: skip
        return "\n".join(lines)


# offsets and lag --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    log_start: int
    committed: int | None  # None: the group has committed nothing here
    end: int
    lag: int
    time_lag: timedelta | None


class LagState:
    """Per partition: log start, the group's committed offset, the end offset and the lag
    in records and in time. Every refresh also appends a sample to :attr:`samples`."""

    def __init__(self, lab: LabLike, topic: str, group: str, *, history: int = 600) -> None:
        self.lab, self.topic, self.group = lab, topic, group
        self.rows: list[PartitionLag] = []
        self.samples: deque[tuple[datetime, dict[int, int]]] = deque(maxlen=history)

    @property
    def total_lag(self) -> int:
        return sum(r.lag for r in self.rows)

    def refresh(self) -> None:
        offsets = self.lab.offsets(self.topic)
        lag = {int(r["partition"]): r for r in _rows(self.lab.lag(self.group)) if r["topic"] == self.topic}
        rows = []
        for r in _rows(offsets):
            p, start, end = int(r["partition"]), int(r["log_start_offset"]), int(r["high_watermark"])
            if p in lag:
                row = lag[p]
                time_lag = pd.Timedelta(row["time_lag"]).to_pytimedelta()
                rows.append(PartitionLag(p, start, int(row["committed"]), end, int(row["lag"]), time_lag))
            else:
                rows.append(PartitionLag(p, start, None, end, end - start, None))
        self.rows = rows
        self.samples.append((datetime.now(UTC), {r.partition: r.lag for r in rows}))

    def summary(self) -> str:
        lines = [f"group {self.group} on topic {self.topic}: lag {_n(self.total_lag)} records in total"]
        for r in self.rows:
            committed = "-" if r.committed is None else _n(r.committed)
            behind = "nothing committed" if r.time_lag is None else f"{r.time_lag} behind"
            lines.append(f"  partition {r.partition}: log start {_n(r.log_start)}, committed {committed}, "
                         f"end {_n(r.end)}, lag {_n(r.lag)} records ({behind})")  # fmt: skip
        return "\n".join(lines)


# rebalance timeline -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Generation:
    """One generation of a group: why it started and who owned what once it did."""

    generation: int
    time: pd.Timestamp
    reason: str
    owners: dict[TopicPartition, str]  # partition -> member label, after this generation
    assigned: tuple[tuple[str, TopicPartition], ...]
    revoked: tuple[tuple[str, TopicPartition], ...]

    def by_member(self) -> dict[str, list[TopicPartition]]:
        out: dict[str, list[TopicPartition]] = {}
        for tp, member in sorted(self.owners.items()):
            out.setdefault(member, []).append(tp)
        return dict(sorted(out.items()))


def generations_from(history: pd.DataFrame) -> list[Generation]:
    """Fold ``lab.rebalances(group)`` (one row per ownership change) into generations."""
    owners: dict[TopicPartition, str] = {}
    out: list[Generation] = []
    for generation, rows in history.groupby("generation", sort=True):
        assigned, revoked = [], []
        for r in _rows(rows):
            tp, member = TopicPartition(str(r["topic"]), int(r["partition"])), member_label(str(r["member"]))
            if r["change"] == "revoked":
                revoked.append((member, tp))
                if owners.get(tp) == member:
                    del owners[tp]
            else:
                owners[tp] = member
                if r["change"] == "assigned":
                    assigned.append((member, tp))
        first = _rows(rows.head(1))[0]
        out.append(Generation(int(str(generation)), pd.Timestamp(first["time"]), _label_text(str(first["reason"])),
                              dict(owners), tuple(assigned), tuple(revoked)))  # fmt: skip
    return out


def _group_snapshot(lab: LabLike, group: str, tries: int = 5) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The group's row of ``lab.groups()`` and its ``describe_group`` rows, read so they
    agree: two calls are not one snapshot, so the group row is read before and after the
    members, and again while it changed in between (a rebalance always moves the state or
    the generation)."""

    def row() -> dict[str, Any] | None:
        found = [r for r in _rows(lab.groups()) if r["group"] == group]
        return found[0] if found else None

    before = row()
    for _ in range(tries):
        described = _rows(lab.describe_group(group))
        after = row()
        if before == after:
            break
        before = after
    return after, described


def _partitions_text(tps: Sequence[TopicPartition]) -> str:
    return ", ".join(str(tp) for tp in tps) or "nothing"


class RebalanceTimelineState:
    """A group's members now, and its generations over time (embedded broker only).

    With ``topic`` set, :meth:`add_consumer`, :meth:`stop_consumer` and
    :meth:`crash_consumer` run members of the group inside this process (a
    :class:`ConsumerPool`), so a notebook can cause rebalances and watch them.
    """

    def __init__(self, lab: LabLike, group: str, topic: str | None = None, **consumer_config: Any) -> None:
        self.lab, self.group, self.topic = lab, group, topic
        self.consumer_config = consumer_config
        self.state, self.assignor, self.member_count = "Empty", "", 0
        self.generation: int | None = 0  # None: the Lab does not report it (DescribeGroups has none)
        self.members: dict[str, list[TopicPartition]] = {}
        self.generations: list[Generation] = []
        self.history_error: str | None = None
        self.group_error: str | None = None
        self.selected: int | None = None  # index into generations; None follows the newest
        self.pool: ConsumerPool | None = None

    def refresh(self) -> None:
        try:
            row, described = _group_snapshot(self.lab, self.group)
            self.group_error = None
        except StreamlabError as exc:  # e.g. librdkafka's mock cluster has no ListGroups/DescribeGroups
            row, described = None, self.pool.assignments() if self.pool is not None else []
            self.group_error = f"group state unavailable from this Lab ({exc}); showing this notebook's members"
        if row is not None:
            self.state, self.generation = str(row["state"]), _maybe_int(row["generation"])
            self.assignor, self.member_count = str(row["assignor"]), int(row["members"])
        elif self.group_error:
            self.state, self.generation, self.assignor = "unknown", None, ""
            self.member_count = len({r["member"] for r in described})
        else:
            self.state, self.generation, self.assignor, self.member_count = "Empty", 0, "", 0
        members: dict[str, list[TopicPartition]] = {}
        for r in described:
            tp = TopicPartition(str(r["topic"]), int(r["partition"]))
            members.setdefault(member_label(str(r["member"])), []).append(tp)
        self.members = {m: sorted(tps) for m, tps in sorted(members.items())}
        history = getattr(self.lab, "rebalances", None)
        if history is None:
            self.history_error = ("rebalance history is recorded by the embedded broker only; "
                                  "this Lab shows the current members and assignment")  # fmt: skip
            return
        try:
            self.generations = generations_from(history(self.group))
            self.history_error = None
        except (NotImplementedError, StreamlabError) as exc:
            self.history_error = f"no rebalance history from this Lab: {exc}"

    def select(self, index: int | None) -> Generation | None:
        """Step to ``generations[index]`` (None: always the newest)."""
        self.selected = index
        return self.current

    @property
    def current(self) -> Generation | None:
        if not self.generations:
            return None
        if self.selected is None:
            return self.generations[-1]
        return self.generations[max(0, min(self.selected, len(self.generations) - 1))]

    # members inside the notebook ------------------------------------------------------------
    def _pool(self) -> ConsumerPool:
        if self.topic is None:
            raise StreamlabError("give the timeline a topic to run consumers of the group in the notebook")
        if self.pool is None:
            self.pool = ConsumerPool(self.lab, self.topic, self.group, **self.consumer_config)
        return self.pool

    def add_consumer(self, client_id: str | None = None) -> str:
        return self._pool().add(client_id)

    def stop_consumer(self, client_id: str | None = None) -> str | None:
        return self._pool().stop(client_id)

    def crash_consumer(self, client_id: str | None = None) -> str | None:
        return self._pool().crash(client_id)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def summary(self) -> str:
        generation = "?" if self.generation is None else self.generation
        lines = [f"group {self.group}: {self.state}, generation {generation}, "
                 f"assignor {self.assignor or '-'}, {self.member_count} member(s)"]  # fmt: skip
        lines += [f"  {m}: {_partitions_text(tps)}" for m, tps in self.members.items()]
        if self.group_error:
            lines.append(f"note: {self.group_error}")
        if self.history_error:
            lines.append(f"history: {self.history_error}")
            return "\n".join(lines)
        lines.append(f"history: {len(self.generations)} generation(s)")
        for g in self.generations:
            owners = "; ".join(f"{m}: {', '.join(str(tp.partition) for tp in tps)}" for m, tps in g.by_member().items())
            mark = "*" if g is self.current and self.selected is not None else " "
            lines.append(f" {mark}generation {g.generation}: {g.reason} -> {owners or 'no owners'} "
                         f"({len(g.revoked)} revoked, {len(g.assigned)} assigned)")  # fmt: skip
        return "\n".join(lines)


class ConsumerPool:
    """Consumers of one group living in this process, subscribed to ``topic`` (a name or a
    list of names) and polled by a background thread.

    They read from ``auto_offset_reset="earliest"`` and commit what they read. ``stop``
    closes one (it leaves the group: a rebalance at once); ``crash`` makes one go silent
    (no leave, no heartbeats), so the coordinator expels it after ``session_timeout_ms``.
    ``static=True`` gives each member its client id as ``group.instance.id`` (static
    membership), which also makes assignors' tie-breaks repeatable from run to run.
    """

    def __init__(
        self,
        lab: LabLike,
        topic: str | Sequence[str],
        group: str,
        *,
        prefix: str = "notebook",
        interval: float = 0.05,
        static: bool = False,
        **config: Any,
    ) -> None:
        self.lab, self.group, self.prefix, self.static = lab, group, prefix, static
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self.config = {"auto_offset_reset": "earliest", "enable_auto_commit": False, "session_timeout_ms": 3000,
                       **config}  # fmt: skip
        self.consumers: dict[str, Any] = {}
        self.consumed: dict[str, int] = {}
        self.errors: list[str] = []
        self._gone: set[str] = set()  # member ids of consumers stopped or crashed here
        self._lock = threading.RLock()
        self._added = 0
        self._ticker = Ticker(self.poll_once, interval, name=f"streamlab-pool-{group}")

    @property
    def members(self) -> list[str]:
        with self._lock:
            return list(self.consumers)

    def add(self, client_id: str | None = None) -> str:
        with self._lock:
            if client_id is None:
                self._added += 1
                client_id = f"{self.prefix}-{self._added}"
                while client_id in self.consumers:
                    self._added += 1
                    client_id = f"{self.prefix}-{self._added}"
            static = {"group_instance_id": client_id} if self.static else {}
            consumer = self.lab.consumer(self.topics, group=self.group, client_id=client_id, **static, **self.config)
            self.consumers[client_id], self.consumed[client_id] = consumer, 0
        self._ticker.start()
        return client_id

    def _take(self, client_id: str | None) -> tuple[str, Any] | None:
        if not self.consumers:
            return None
        client_id = client_id if client_id is not None else next(reversed(self.consumers))
        consumer = self.consumers.pop(client_id)
        if getattr(consumer, "member_id", None) is not None:
            self._gone.add(consumer.member_id)
        return client_id, consumer

    def stop(self, client_id: str | None = None) -> str | None:
        """Close a member (default: the newest); it leaves the group."""
        with self._lock:
            taken = self._take(client_id)
            if taken is not None:
                taken[1].close()
            return taken[0] if taken else None

    def crash(self, client_id: str | None = None) -> str | None:
        """Make a member (default: the newest) stop without leaving, like a killed process."""
        with self._lock:
            taken = self._take(client_id)
            if taken is not None:
                die = getattr(taken[1], "_die", None)
                die() if die is not None else taken[1].close()
            return taken[0] if taken else None

    def poll_once(self) -> None:
        with self._lock:
            for client_id, consumer in list(self.consumers.items()):
                try:
                    records = consumer.poll(timeout=0, max_records=500)
                    if records:
                        self.consumed[client_id] += len(records)
                        consumer.commit()
                except StreamlabError as exc:  # a commit racing a rebalance: retried next time
                    self.errors = [*self.errors[-9:], f"{client_id}: {exc}"]

    def assignments(self) -> list[dict[str, Any]]:
        """What each member here holds, as ``describe_group`` rows (client id as member)."""
        with self._lock:
            return [{"member": cid, "topic": tp.topic, "partition": tp.partition}
                    for cid, c in self.consumers.items() for tp in sorted(c.assignment())]  # fmt: skip

    def _covered(self) -> bool:
        """Without the group's state (a Lab that cannot describe groups): the members here
        hold every partition of their topics, each exactly once."""
        rows = self.assignments()
        held = [(r["topic"], r["partition"]) for r in rows]
        wanted = {(t, int(r["partition"])) for t in self.topics for r in _rows(self.lab.offsets(t))}
        everyone = len({r["member"] for r in rows}) == min(len(self.consumers), len(wanted))
        return len(held) == len(set(held)) and set(held) == wanted and everyone

    def settled(self) -> bool:
        """The group is stable and every member here holds what the coordinator assigned it."""
        try:
            row, described = _group_snapshot(self.lab, self.group)
        except StreamlabError:
            return self._covered()
        if row is None or row["state"] != "Stable" or int(row["members"]) < len(self.consumers):
            return False
        if any(r["member"] in self._gone for r in described):
            return False  # a crashed member still holds partitions until its session times out
        with self._lock:
            for consumer in self.consumers.values():
                member_id = getattr(consumer, "member_id", None)
                given = {TopicPartition(str(r["topic"]), int(r["partition"]))
                         for r in described if r["member"] == member_id}  # fmt: skip
                if member_id is None or set(consumer.assignment()) != given:
                    return False
        return True

    def settle(self, timeout: float = 15.0) -> bool:
        """Poll until :meth:`settled` (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_once()
            if self.settled():
                return True
            time.sleep(0.02)
        return False

    def catch_up(self, timeout: float = 15.0) -> bool:
        """Poll until the group has committed every record of the topic (True), or
        ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_once()
            ends = {(t, int(r["partition"])): int(r["high_watermark"]) for t in self.topics
                    for r in _rows(self.lab.offsets(t))}  # fmt: skip
            done = {
                (str(r["topic"]), int(r["partition"])): int(r["committed"]) for r in _rows(self.lab.lag(self.group))
            }
            if all(done.get(tp, -1) >= end for tp, end in ends.items() if end):
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._ticker.stop()
        with self._lock:
            while self.consumers:
                self.stop()

    def summary(self) -> str:
        with self._lock:
            if not self.consumers:
                return f"no consumers of {self.group} running in this notebook"
            return "\n".join(
                f"{cid}: {_partitions_text(sorted(c.assignment()))}; read {_n(self.consumed[cid])} records"
                for cid, c in self.consumers.items()
            )


# producer panel ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Sent:
    partition: int
    offset: int
    timestamp: int
    key: Any
    value: Any


def _json_rows(data: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(data.to_json(orient="records", date_format="iso", date_unit="ms"))
    return rows


class ProducerPanelState:
    """Send one record by hand, or run a generator replaying a dataset at ``rate`` records
    per second in a background thread; keeps where the last records went."""

    def __init__(self, lab: LabLike, topic: str, *, keep: int = 10, **producer_config: Any) -> None:
        self.lab, self.topic = lab, topic
        self.producer_config = producer_config
        self.sent: deque[Sent] = deque(maxlen=keep)
        self.by_hand = 0
        self.generated = 0
        self.target: int | None = None
        self.rate = 0.0
        self.error: str | None = None
        self._producer: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def producer(self) -> Any:
        with self._lock:
            if self._producer is None:
                self._producer = self.lab.producer(**self.producer_config)
            return self._producer

    @property
    def last(self) -> Sent | None:
        return self.sent[-1] if self.sent else None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _record(self, md: RecordMetadata, key: Any, value: Any) -> Sent:
        sent = Sent(md.partition, md.offset, md.timestamp, key, value)
        self.sent.append(sent)
        return sent

    def send(
        self,
        value: Any,
        key: Any = None,
        headers: dict[str, str] | None = None,
        *,
        partition: int | None = None,
        timestamp: Any = None,
        timeout: float = 10,
    ) -> Sent:
        md = self.producer.send(self.topic, value=value, key=key, headers=headers, partition=partition,
                                timestamp=timestamp).result(timeout=timeout)  # fmt: skip
        self.by_hand += 1
        return self._record(md, key, value)

    def send_text(self, value: str, key: str = "", headers: str = "") -> Sent:
        """What the panel's text boxes hold: the value is JSON if it parses, else text;
        headers are a JSON object; an empty key means no key."""
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        heads = json.loads(headers) if headers.strip() else None
        if heads is not None and not isinstance(heads, dict):
            raise StreamlabError(f"headers must be a JSON object, got {headers!r}")
        return self.send(parsed, key or None, {str(k): str(v) for k, v in (heads or {}).items()})

    def start(
        self,
        rate: float = 10.0,
        *,
        data: pd.DataFrame | None = None,
        key: str | None = "user",
        timestamp: str | None = None,
        limit: int | None = None,
    ) -> None:
        """Replay ``data`` (default: :func:`streamlab.datasets.clickstream`) into the topic
        at ``rate`` records per second, keyed by column ``key``, stamped with column
        ``timestamp`` (None: the time of sending), stopping after ``limit`` records."""
        if rate <= 0:
            raise StreamlabError(f"rate must be positive, got {rate}")
        self.stop()
        if data is None:
            from streamlab.datasets import clickstream

            data = clickstream(limit)
        rows = _json_rows(data if limit is None else data.head(limit))
        self.rate, self.generated, self.target, self.error = rate, 0, len(rows), None
        self._stop.clear()
        self._thread = threading.Thread(target=self._generate, args=(rows, rate, key, timestamp),
                                        name=f"streamlab-generator-{self.topic}", daemon=True)  # fmt: skip
        self._thread.start()

    def _generate(self, rows: list[dict[str, Any]], rate: float, key: str | None, ts: str | None) -> None:
        producer, began, i = self.producer, time.monotonic(), 0
        try:
            while i < len(rows) and not self._stop.is_set():
                due = min(len(rows), int((time.monotonic() - began) * rate) + 1)
                last = None
                for row in rows[i:due]:
                    k = row.pop(key, None) if key else None
                    stamp = row.pop(ts, None) if ts else None
                    last = (producer.send(self.topic, value=row, key=k, timestamp=stamp), k, row)
                if last is not None:
                    self._record(last[0].result(timeout=30), last[1], last[2])
                self.generated += due - i
                i = due
                self._stop.wait(min(0.1, max(0.0, began + i / rate - time.monotonic())))
        except Exception as exc:
            self.error = f"generator stopped: {exc}"

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait for the generator to finish; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            if self._producer is not None:
                self._producer.close()
                self._producer = None

    def summary(self) -> str:
        status = "running" if self.running else "stopped"
        if self.target is not None:
            status += f", {_n(self.generated)} of {_n(self.target)} generated at {self.rate:g} records/s"
        lines = [f"producer for {self.topic}: {self.by_hand} sent by hand; generator {status}"]
        if self.error:
            lines.append(f"  error: {self.error}")
        if self.last is not None:
            s = self.last
            lines.append(f"  last sent: partition {s.partition}, offset {_n(s.offset)}, key {_short(s.key, 20)}")
        return "\n".join(lines)
