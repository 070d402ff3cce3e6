"""``streamlab serve`` on the Kafka wire, against librdkafka's mock cluster and Redis Streams.

Run ``python bench/bench_wire.py`` (after ``pip install -e .[kafka,bench]``). Everything is on
127.0.0.1 and measured in one run. On ``--records`` records of ~100 bytes (a ``user-NNNN`` key
among ~1,000, a random value; ``redis_ref.make_records``) over 3 partitions it measures:

1. produce: one confluent-kafka ``Producer`` (``acks=all``, ``linger.ms=5``, keyed, the default
   partitioner) calling ``produce()`` per record, then ``flush()``; the clock stops when every
   record is acknowledged. Delivery reports are asked for failures only
   (``delivery.report.only.error``), so the loop measures the client and the broker, not a
   Python callback per record; no failure is tolerated.
2. consume: one confluent-kafka ``Consumer`` in a fresh group (``auto.offset.reset=earliest``,
   the default auto-commit) reading every record back with ``consume(1000)``, then a
   synchronous ``commit()``. The clock starts when the group assigns the partitions (the
   join before it is reported on its own, as Redis's figure excludes ``XGROUP CREATE``).
3. latency: ``produce()`` paced at ``--rate`` records/s for ``--latency-seconds`` seconds,
   median and p99 of the time from ``produce()`` to its delivery report (same producer
   configuration, so the 5 ms linger is part of it).
4. large records: ``--large-records`` records of ``--large-size`` bytes (500 KB) produced to a
   topic of ``--large-partitions`` partitions, then read back ``--large-passes`` times by one
   consumer assigned every partition from its low watermark (no group); MB/s of the values
   read, from the assignment to the last record. 30 partitions, because the mock cluster keeps ~5 MB per partition: it
   serves back ~10 records of each, ~130 MB in all, enough to time.
5. compressed batches: sections 1 and 2 again with the producer's ``compression.type=--codec``
   (lz4); ``streamlab serve`` hands the producer's batches back as written, as Kafka does.

against:

* (a) ``streamlab serve``, started by this script on a free port with its data in a temporary
  directory and stopped at the end (``acks=all`` there means fsynced before the answer);
* (b) librdkafka's mock cluster (``streamlab.kafka.MockCluster(brokers=3)``, in memory, inside
  this process; the topic's leaders are spread over the 3 brokers). It keeps only ~5 MB per
  partition and drops the oldest message sets past that, so it serves back ~140,000 of the
  200,000 records; its consume rate is over the records it kept;
* (c) Redis Streams through redis-py + hiredis (``redis_ref``): pipelined ``XADD`` and
  ``XREADGROUP`` + ``XACK``, 1,000 per round trip, in memory and with ``appendfsync always``.

Sections 1 and 2 run against every target, ``--repeat`` (3) times in turn, and report each
target's best round (every round is printed); section 3 runs once against (a) and (b), section 4
``--repeat`` times against (a) and (b). The goals: ``streamlab serve`` >= 1x Redis in both
directions and >= 0.75x the mock cluster's records/s (issue #13); large records fetched at
>= 0.5x the mock cluster's MB/s. The mock cluster is the speed of a broker written in C with
no storage at all.

Everything started here (the serve process, redis-server, the mock cluster) is stopped at
the end, on an error, and when the ``--budget`` runs out; the child processes also get
SIGKILL from the kernel should this process die.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import confluent_kafka
import numpy as np
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import streamlab
from streamlab.kafka.mock_cluster import MockCluster

sys.path.insert(0, str(Path(__file__).resolve().parent))
import redis_ref  # the sibling reference harness

PARTITIONS = 3
N_KEYS = 1000
BATCH = 1000
STREAMS = [f"wire-{i}" for i in range(PARTITIONS)]
READY_TIMEOUT_S = 60.0
STALL_TIMEOUT_S = 60.0  # no progress for this long is an error, not a slow figure
SERVE = "streamlab serve"
MOCK = "mock cluster (3 brokers)"
REDIS = "redis in memory"
REDIS_DURABLE = "redis fsync=always"
TARGETS = (SERVE, MOCK, REDIS, REDIS_DURABLE)


def say(text: str = "") -> None:
    print(text, flush=True)


class BudgetExceeded(BaseException):
    """Out of time (a BaseException so no ``except Exception`` on the way swallows it)."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise BudgetExceeded("benchmark time budget exceeded")


@contextlib.contextmanager
def budget(seconds: int) -> Iterator[None]:
    """SIGALRM after ``seconds``; and, should the main thread be stuck inside a C call then,
    a watchdog that ends the process 45 s later (the children die with it: PDEATHSIG)."""

    def last_resort() -> None:
        print(f"aborted: stuck {seconds + 45}s after start; exiting hard", file=sys.stderr, flush=True)
        os._exit(3)

    watchdog = threading.Timer(seconds + 45, last_resort)
    watchdog.daemon = True
    watchdog.start()
    previous: Callable[[int, FrameType | None], Any] | int | None = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        watchdog.cancel()


def check(ok: bool, message: str) -> None:
    if not ok:
        raise RuntimeError(message)


# targets -------------------------------------------------------------------------------------
@contextlib.contextmanager
def serve_process(data_dir: Path, log_path: Path) -> Iterator[str]:
    """``streamlab serve`` on a free loopback port, ready; yields its bootstrap address.
    SIGTERM (then SIGKILL after 20 s) at the end."""
    for _attempt in range(3):  # the free port may be taken between probe and bind: retry
        port = redis_ref._free_port()
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streamlab.cli.main", "serve", "--data", str(data_dir), "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=redis_ref._die_with_parent if sys.platform == "linux" else None,
            )
        try:
            if _wait_ready(proc, log_path, offset):
                yield f"127.0.0.1:{port}"
                return
        finally:
            _terminate(proc)
    raise RuntimeError(f"streamlab serve did not start:\n{_log_since(log_path, 0)[-3000:]}")


def _log_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _wait_ready(proc: subprocess.Popen[bytes], log_path: Path, offset: int) -> bool:
    """True once the server logged its ready line; False if it exited because the port was taken."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "ready:" not in (text := _log_since(log_path, offset)):
        if proc.poll() is not None:
            if "address already in use" in text.lower():
                return False
            raise RuntimeError(f"streamlab serve exited with {proc.returncode}:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"streamlab serve was not ready after {READY_TIMEOUT_S:.0f}s:\n{text[-3000:]}")
        time.sleep(0.05)
    return True


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def create_serve_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30)
    futures[name].result(timeout=30)


# the Kafka clients -----------------------------------------------------------------------------
def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 60_000,
        **extra,
    }


def wait_for_topic(client: Producer | Consumer, topic: str, partitions: int = PARTITIONS) -> None:
    """Until the metadata shows every partition with a leader (so no record waits for it)."""
    deadline = time.monotonic() + 30
    while True:
        md = client.list_topics(topic, timeout=10).topics.get(topic)
        ready = md is not None and md.error is None and len(md.partitions) == partitions
        if ready and all(p.leader >= 0 for p in md.partitions.values()):
            return
        check(time.monotonic() < deadline, f"topic {topic} has no leaders after 30 s: {md}")
        time.sleep(0.1)


@contextlib.contextmanager
def dropping_unsent(p: Producer) -> Iterator[None]:
    """On the way out (an error, the budget), drop what ``p`` still holds, so that its
    destruction never waits for a broker that is being stopped."""
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            p.purge(in_queue=True, in_flight=True, blocking=False)
            p.poll(0)


def produce_all(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]], compression: str = "none") -> float:
    """Seconds from the first ``produce()`` until every record is acknowledged."""
    errors: list[KafkaError] = []

    def on_error(err: KafkaError | None, msg: Any) -> None:  # failures only (see the config)
        if err is not None:
            errors.append(err)

    p = Producer(producer_config(bootstrap, **{"delivery.report.only.error": True, "on_delivery": on_error,
                                               "compression.type": compression}))  # fmt: skip
    with dropping_unsent(p):
        wait_for_topic(p, topic)
        produce, poll = p.produce, p.poll
        start = time.perf_counter()
        for key, value in records:
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:  # the client's queue is full (100,000 messages): wait for acks
                    poll(0.001)
        stall = time.monotonic() + STALL_TIMEOUT_S
        while (left := p.flush(1.0)) > 0:
            check(time.monotonic() < stall, f"{left} records still unacknowledged after {STALL_TIMEOUT_S:.0f}s")
        seconds = time.perf_counter() - start
    check(not errors, f"{len(errors)} records failed, e.g. {errors[:3]}")
    return seconds


@dataclass
class ConsumeResult:
    n: int
    seconds: float  # from the partition assignment to the end of the final commit
    join_seconds: float  # from subscribe() to the partition assignment

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    @property
    def rate_with_join(self) -> float:
        return self.n / (self.seconds + self.join_seconds)


def retained(client: Consumer, topic: str, n: int, may_trim: bool) -> int:
    """How many of the ``n`` records produced to ``topic`` it still holds (high - low watermark).

    librdkafka's mock cluster keeps about 5 MB per partition and drops older message sets
    (``rdkafka_mock.c``: a partition's log is trimmed past ``max_size``/``max_cnt``), so on
    it (``may_trim``) a consumer from the earliest offset gets fewer than ``n``."""
    marks = [client.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(PARTITIONS)]
    check(sum(high for _, high in marks) == n, f"watermarks {marks} do not add up to the {n} records produced")
    check(may_trim or all(low == 0 for low, _ in marks), f"records were dropped: watermarks {marks}")
    return sum(high - low for low, high in marks)


def consume_all(bootstrap: str, topic: str, n: int, group: str, may_trim: bool = False) -> ConsumeResult:
    """One consumer in a fresh group reads every record of ``topic`` (``n`` were produced), then
    commits; the result's ``n`` is how many it read (fewer than produced only if ``may_trim``)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
        }
    )
    assigned: list[float] = []

    def on_assign(consumer: Consumer, partitions: list[Any]) -> None:  # the client assigns them after this
        assigned.append(time.perf_counter())

    try:
        wait_for_topic(c, topic)
        n = retained(c, topic, n, may_trim)
        start = time.perf_counter()
        c.subscribe([topic], on_assign=on_assign)
        got = 0
        stall = time.monotonic() + STALL_TIMEOUT_S
        consume = c.consume
        while got < n:
            msgs = consume(BATCH, 0.5)
            if not msgs:
                check(time.monotonic() < stall, f"consumed {got} of {n}, then nothing for {STALL_TIMEOUT_S:.0f}s")
                continue
            for m in msgs:
                if m.error() is not None:
                    raise KafkaException(m.error())
            got += len(msgs)
            stall = time.monotonic() + STALL_TIMEOUT_S
        try:
            c.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:  # auto-commit got there first
                raise
        end = time.perf_counter()
        check(got == n, f"consumed {got} records, expected {n}")
        check(len(assigned) == 1, f"{len(assigned)} assignments, expected one")
        check(not consume(BATCH, 0.2), "more records than were produced")
    finally:
        c.close()
    return ConsumeResult(n, end - assigned[0], assigned[0] - start)


@dataclass
class Latency:
    samples_ms: list[float] = field(default_factory=list)
    sent_s: list[float] = field(default_factory=list)  # when each sample's record was produced, from the start
    achieved_rate: float = 0.0

    def median_per_second(self) -> list[float]:
        seconds: dict[int, list[float]] = {}
        for at, ms in zip(self.sent_s, self.samples_ms, strict=True):
            seconds.setdefault(int(at), []).append(ms)
        return [statistics.median(seconds[k]) for k in sorted(seconds)]

    def median(self) -> float:
        return statistics.median(self.samples_ms)

    def p99(self) -> float:
        return float(np.percentile(np.asarray(self.samples_ms), 99))


def paced_latency(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]], rate: int, seconds: float
) -> Latency:
    """``produce()`` at ``rate`` records/s for ``seconds``; each record's time to its delivery report."""
    out = Latency()
    errors: list[KafkaError] = []
    perf_counter = time.perf_counter

    def on_delivery(sent: float, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            out.samples_ms.append((perf_counter() - sent) * 1000)
            out.sent_s.append(sent - start)

    start = 0.0
    p = Producer(producer_config(bootstrap))
    with dropping_unsent(p):
        wait_for_topic(p, topic)
        for i in range(PARTITIONS * 10):  # warm: connections up, a batch through every partition
            p.produce(topic, b"warm-up", f"warm-{i}".encode())
        check(p.flush(30) == 0, "warm-up records not acknowledged")
        total = int(rate * seconds)
        produce, poll = p.produce, p.poll
        sent = 0
        start = perf_counter()
        while sent < total:
            due = min(total, int((perf_counter() - start) * rate) + 1)
            while sent < due:
                key, value = records[sent % len(records)]
                produce(topic, value, key, on_delivery=partial(on_delivery, perf_counter()))
                sent += 1
            poll(0.001)  # serves delivery reports as they come; else waits 1 ms
        out.achieved_rate = total / (perf_counter() - start)
        stall = time.monotonic() + STALL_TIMEOUT_S
        while (left := p.flush(1.0)) > 0:
            check(time.monotonic() < stall, f"{left} records still unacknowledged after {STALL_TIMEOUT_S:.0f}s")
    check(not errors, f"{len(errors)} records failed, e.g. {errors[:3]}")
    check(len(out.samples_ms) == total, f"{len(out.samples_ms)} delivery reports for {total} records")
    return out


def run_kafka(
    name: str, bootstrap: str, create: Callable[[str], None], records: Sequence[tuple[bytes, bytes]],
    compression: str = "none",
) -> tuple[float, ConsumeResult]:  # fmt: skip
    topic = f"wire-{uuid.uuid4().hex[:8]}"
    create(topic)
    n = len(records)
    produced = n / produce_all(bootstrap, topic, records, compression)
    say(f"  {name}: produce {produced:,.0f} rec/s" + ("" if compression == "none" else f" ({compression})"))
    consumed = consume_all(bootstrap, topic, n, f"bench-{topic}", may_trim=name == MOCK)
    say(
        f"  {name}: consume {consumed.rate:,.0f} rec/s from the assignment "
        f"(the group join took {consumed.join_seconds:.2f} s; {consumed.rate_with_join:,.0f} rec/s with it)"
    )
    if consumed.n < n:
        say(f"    read {consumed.n:,} of {n:,} records: the mock cluster dropped the oldest (it keeps ~5 MB/partition)")
    return produced, consumed


def create_topic_on(name: str, serve: str, mock: MockCluster, partitions: int) -> Callable[[str], None]:
    if name == SERVE:
        return partial(create_serve_topic, serve, partitions=partitions)
    return lambda topic: mock.create_topic(topic, partitions, replication=3)


@dataclass
class LargeResult:
    produced_mb_s: float
    records: int  # read back (the mock cluster keeps only the newest ~5 MB per partition)
    megabytes: float
    seconds: float

    @property
    def mb_s(self) -> float:
        return self.megabytes / self.seconds


def run_large(
    name: str, bootstrap: str, create: Callable[[str], None], n: int, size: int, partitions: int, passes: int
) -> LargeResult:
    """``n`` records of ``size`` random bytes produced unkeyed, then read back ``passes``
    times by one consumer assigned every partition from its low watermark (the mock
    cluster's ~130 MB take a fraction of a second: one pass alone is mostly noise); the
    clock runs from the first assignment to the last record."""
    topic = f"large-{uuid.uuid4().hex[:8]}"
    create(topic)
    value = os.urandom(size)
    p = Producer(producer_config(bootstrap, **{"message.max.bytes": 2 * size + 1024}))
    with dropping_unsent(p):
        wait_for_topic(p, topic, partitions)
        start = time.perf_counter()
        for _ in range(n):
            while True:
                try:
                    p.produce(topic, value)
                    break
                except BufferError:  # the client's queue is full (1 GB by default): wait for acks
                    p.poll(0.01)
        stall = time.monotonic() + STALL_TIMEOUT_S
        while (left := p.flush(1.0)) > 0:
            check(time.monotonic() < stall, f"{left} records still unacknowledged after {STALL_TIMEOUT_S:.0f}s")
        produced = n * size / (time.perf_counter() - start) / 1e6
    # A fetch left waiting at the end of a pass holds up the next pass's first fetch for up
    # to fetch.wait.max.ms (500 ms by default): short here, on both targets alike.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10})  # fmt: skip
    try:
        marks = [c.get_watermark_offsets(TopicPartition(topic, i), timeout=10) for i in range(partitions)]
        check(sum(high for _, high in marks) == n, f"watermarks {marks} do not add up to the {n} records produced")
        check(name == MOCK or all(low == 0 for low, _ in marks), f"records were dropped: watermarks {marks}")
        retained = sum(high - low for low, high in marks)
        nbytes = 0
        start = time.perf_counter()
        for _pass in range(passes):
            c.assign([TopicPartition(topic, i, low) for i, (low, _) in enumerate(marks)])
            left = retained
            stall = time.monotonic() + STALL_TIMEOUT_S
            while left:
                # never ask for more than is left: consume(k) would otherwise wait out its timeout
                msgs = c.consume(min(100, left), 0.5)
                check(bool(msgs) or time.monotonic() < stall, f"{left} of {retained} records not read")
                for m in msgs:
                    if m.error() is not None:
                        raise KafkaException(m.error())
                    check(len(m.value()) == size, f"a record of {len(m.value())} bytes, expected {size}")
                    left -= 1
                    nbytes += size
                if msgs:
                    stall = time.monotonic() + STALL_TIMEOUT_S
        seconds = time.perf_counter() - start
    finally:
        c.close()
    result = LargeResult(produced, retained, nbytes / 1e6, seconds)
    say(
        f"  {name}: produce {produced:,.1f} MB/s; fetched {retained:,} records {passes} times "
        f"({result.megabytes:,.0f} MB) in {seconds:.2f} s: {result.mb_s:,.1f} MB/s"
    )
    return result


def run_redis(name: str, r: redis.Redis, records: Sequence[tuple[bytes, bytes]]) -> tuple[float, float]:
    r.flushall()
    n = len(records)
    produced = n / redis_ref.xadd_pipelined(r, STREAMS, records, BATCH)
    consumed = n / redis_ref.xreadgroup_xack(r, STREAMS, "bench", BATCH)
    say(f"  {name}: XADD pipelined x{BATCH} {produced:,.0f} rec/s, XREADGROUP+XACK x{BATCH} {consumed:,.0f} rec/s")
    return produced, consumed


# results ---------------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    what: str
    ours: float
    ref: float
    ref_what: str
    unit: str  # "rec/s" or "MB/s" (higher is better) or "ms" (lower is better)
    goal: float | None = None  # minimum ours/ref for rec/s and MB/s

    @property
    def ratio(self) -> float:
        return self.ours / self.ref if self.ref else float("nan")

    def goal_text(self) -> str:
        return "info" if self.goal is None else f">= {self.goal:g}x"

    def met(self) -> str:
        if self.goal is None:
            return "-"
        return "met" if self.ratio >= self.goal else "NOT MET"


def fmt(value: float, unit: str) -> str:
    if unit == "rec/s":
        return f"{value:,.0f} rec/s"
    return f"{value:,.1f} MB/s" if unit == "MB/s" else f"{value:.2f} ms"


def print_table(head: Sequence[str], table: Sequence[Sequence[str]], right: set[int]) -> None:
    lines = [tuple(head), *[tuple(line) for line in table]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(line, widths, strict=True))]
        say("  ".join(cells).rstrip())
        if i == 0:
            say("  ".join("-" * w for w in widths))


def print_rows(rows: Sequence[Row]) -> None:
    table = [
        (r.section, r.what, fmt(r.ours, r.unit), f"{fmt(r.ref, r.unit)} ({r.ref_what})", f"{r.ratio:.2f}x",
         r.goal_text(), r.met())
        for r in rows
    ]  # fmt: skip
    print_table(("#", "what", SERVE, "reference", "ratio", "goal", "result"), table, {2, 3, 4})


# machine, main -----------------------------------------------------------------------------------
def fs_type(path: Path) -> str:
    best, kind = "", "?"
    with contextlib.suppress(OSError), open("/proc/mounts") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} on {parts[0]}"
    return kind


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def describe_machine(root: Path) -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    say(f"machine: {platform.platform()}, nproc {cpus}, {cpu_model()}")
    say(
        f"python {platform.python_version()}, streamlab {streamlab.__version__}, "
        f"confluent-kafka {confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]}), "
        f"redis-py {redis.__version__} (hiredis), redis-server {redis_ref._server_version()}"
    )
    say(f"data dir: {root} ({fs_type(root)})")
    with contextlib.suppress(OSError), open("/proc/loadavg") as fh:
        say(f"load average at start: {' '.join(fh.read().split()[:3])}")
    fs = fsync_latency(root, 200)
    say(
        f"disk: os.write + os.fsync of 100 B in the data dir: median {statistics.median(fs):.3f} ms, "
        f"p99 {np.percentile(fs, 99):.3f} ms (200 samples)"
    )


def fsync_latency(directory: Path, count: int) -> list[float]:
    """Milliseconds of one small write + ``os.fsync`` on the disk holding ``directory``."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        out = []
        for _ in range(count):
            start = time.perf_counter()
            os.write(fd, b"x" * 100)
            os.fsync(fd)
            out.append((time.perf_counter() - start) * 1000)
        return out
    finally:
        os.close(fd)
        path.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="streamlab serve vs librdkafka's mock cluster and Redis Streams.")
    parser.add_argument("--records", type=int, default=200_000, help="records produced and consumed per target")
    parser.add_argument("--size", type=int, default=100, help="bytes per record (key + value)")
    parser.add_argument("--rate", type=int, default=10_000, help="records/s of the paced latency run")
    parser.add_argument("--latency-seconds", type=float, default=5.0, help="length of the paced latency run")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many produce/consume rounds")
    parser.add_argument("--large-records", type=int, default=300, help="records of the large-record run")
    parser.add_argument("--large-size", type=int, default=500_000, help="bytes per record of the large-record run")
    parser.add_argument("--large-partitions", type=int, default=30, help="partitions of the large-record topic")
    parser.add_argument("--large-passes", type=int, default=3, help="times the large records are read back")
    parser.add_argument("--codec", default="lz4", help="compression.type of the compressed-batch run")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where data goes (default: system temp)")
    parser.add_argument("--budget", type=int, default=480, help="abort after this many seconds")
    args = parser.parse_args(argv)
    if args.records < BATCH or args.repeat < 1 or args.rate < 1 or args.latency_seconds <= 0:
        parser.error(f"--records must be at least {BATCH}; --repeat, --rate, --latency-seconds positive")

    if args.tmp_dir is not None:
        args.tmp_dir.mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(args.tmp_dir)  # redis_ref's server directory goes there too
    root = Path(tempfile.mkdtemp(prefix="bench-wire-"))
    started = time.perf_counter()
    try:
        with budget(args.budget), contextlib.ExitStack() as stack:
            describe_machine(root)
            records = redis_ref.make_records(args.records, args.size, n_keys=N_KEYS)
            sizes = np.array([len(k) + len(v) for k, v in records])
            say(
                f"data: {len(records):,} records, {len({k for k, _ in records}):,} distinct keys, key+value "
                f"{sizes.mean():.1f} bytes on average, {PARTITIONS} partitions (Redis: {PARTITIONS} streams by crc32)"
            )
            say(
                "kafka clients: Producer acks=all linger.ms=5 (librdkafka defaults otherwise), failures-only "
                f"delivery reports; Consumer group.id=<fresh> auto.offset.reset=earliest, consume({BATCH}), "
                "auto-commit + a final commit()"
            )
            say("starting targets:")
            t = time.perf_counter()
            serve = stack.enter_context(serve_process(root / "serve-data", root / "serve.log"))
            say(f"  {SERVE} on {serve} ready after {time.perf_counter() - t:.1f} s (data in {root / 'serve-data'})")
            mock = stack.enter_context(MockCluster(brokers=3))
            say(f"  {MOCK} on {mock.bootstrap}")
            r_mem = stack.enter_context(redis_ref.redis_server(durable=False, socket_timeout=120.0))
            r_dur = stack.enter_context(redis_ref.redis_server(durable=True, socket_timeout=120.0))
            say(f"  {REDIS} and {REDIS_DURABLE} (--appendonly yes --appendfsync always)")

            produce: dict[str, float] = dict.fromkeys(TARGETS, 0.0)
            consume: dict[str, float] = dict.fromkeys(TARGETS, 0.0)
            consume_join: dict[str, float] = {}
            read: dict[str, int] = dict.fromkeys(TARGETS, len(records))
            join_s: dict[str, float] = {}
            for round_ in range(args.repeat):
                say(f"throughput, round {round_ + 1} of {args.repeat}:")
                for name, bootstrap, create in (
                    (SERVE, serve, partial(create_serve_topic, serve)),
                    (MOCK, mock.bootstrap, lambda topic: mock.create_topic(topic, PARTITIONS, replication=3)),
                ):
                    p, c = run_kafka(name, bootstrap, create, records)
                    produce[name] = max(produce[name], p)
                    if c.rate > consume[name]:
                        consume[name], consume_join[name], join_s[name] = c.rate, c.rate_with_join, c.join_seconds
                        read[name] = c.n
                for name, client in ((REDIS, r_mem), (REDIS_DURABLE, r_dur)):
                    p, c_rate = run_redis(name, client, records)
                    produce[name], consume[name] = max(produce[name], p), max(consume[name], c_rate)

            # Fetch hands the producer's compressed batches back as they were written
            # (broker/batch_passthrough.py), as the mock cluster does.
            say(f"compressed batches, compression.type={args.codec}:")
            zipped_produce: dict[str, float] = {SERVE: 0.0, MOCK: 0.0}
            zipped_consume: dict[str, float] = {SERVE: 0.0, MOCK: 0.0}
            for _round in range(args.repeat):
                for name, bootstrap in ((SERVE, serve), (MOCK, mock.bootstrap)):
                    create = create_topic_on(name, serve, mock, PARTITIONS)
                    p, c = run_kafka(name, bootstrap, create, records, compression=args.codec)
                    zipped_produce[name] = max(zipped_produce[name], p)
                    zipped_consume[name] = max(zipped_consume[name], c.rate)

            say(f"latency, produce() paced at {args.rate:,} rec/s for {args.latency_seconds:g} s:")
            latency: dict[str, Latency] = {}
            for name, bootstrap, create in (
                (SERVE, serve, partial(create_serve_topic, serve)),
                (MOCK, mock.bootstrap, lambda topic: mock.create_topic(topic, PARTITIONS, replication=3)),
            ):
                topic = f"latency-{uuid.uuid4().hex[:8]}"
                create(topic)
                lat = paced_latency(bootstrap, topic, records, args.rate, args.latency_seconds)
                latency[name] = lat
                s = lat.samples_ms
                say(
                    f"  {name}: {len(s):,} records at {lat.achieved_rate:,.0f} rec/s: median {lat.median():.2f} ms, "
                    f"p90 {np.percentile(s, 90):.2f} ms, p99 {lat.p99():.2f} ms, max {max(s):.2f} ms"
                )
                say(f"    median of each second: {', '.join(f'{m:.2f}' for m in lat.median_per_second())} ms")
            say(
                f"large records, {args.large_records:,} of {args.large_size:,} bytes over "
                f"{args.large_partitions} partitions:"
            )
            large: dict[str, LargeResult] = {}
            for _round in range(args.repeat):
                for name, bootstrap in ((SERVE, serve), (MOCK, mock.bootstrap)):
                    create = create_topic_on(name, serve, mock, args.large_partitions)
                    got = run_large(
                        name,
                        bootstrap,
                        create,
                        args.large_records,
                        args.large_size,
                        args.large_partitions,
                        args.large_passes,
                    )
                    if name not in large or got.mb_s > large[name].mb_s:
                        large[name] = got
            say(f"stopping targets ({time.perf_counter() - started:.0f} s so far)")

        best = f" (best of {args.repeat})" if args.repeat > 1 else ""
        say()
        say(f"per target{best}:")
        blank = "-"
        table = [
            ("produce, rec/s", *[f"{produce[t]:,.0f}" for t in TARGETS]),
            ("consume (group), rec/s", *[f"{consume[t]:,.0f}" for t in TARGETS]),
            ("  records read back", *[f"{read[t]:,}" for t in TARGETS]),
            ("  incl. group join, rec/s", f"{consume_join[SERVE]:,.0f}", f"{consume_join[MOCK]:,.0f}", blank, blank),
            ("  group join, s", f"{join_s[SERVE]:.2f}", f"{join_s[MOCK]:.2f}", blank, blank),
            (f"latency median @{args.rate:,}/s, ms", f"{latency[SERVE].median():.2f}",
             f"{latency[MOCK].median():.2f}", blank, blank),
            (f"latency p99 @{args.rate:,}/s, ms", f"{latency[SERVE].p99():.2f}", f"{latency[MOCK].p99():.2f}",
             blank, blank),
            (f"produce {args.codec}, rec/s", f"{zipped_produce[SERVE]:,.0f}", f"{zipped_produce[MOCK]:,.0f}",
             blank, blank),
            (f"consume {args.codec} (group), rec/s", f"{zipped_consume[SERVE]:,.0f}",
             f"{zipped_consume[MOCK]:,.0f}", blank, blank),
            ("large records fetched, MB/s", f"{large[SERVE].mb_s:,.1f}", f"{large[MOCK].mb_s:,.1f}", blank, blank),
            ("  records read back", f"{large[SERVE].records:,}", f"{large[MOCK].records:,}", blank, blank),
            ("large records produced, MB/s", f"{large[SERVE].produced_mb_s:,.1f}",
             f"{large[MOCK].produced_mb_s:,.1f}", blank, blank),
        ]  # fmt: skip
        print_table(("", *TARGETS), table, {1, 2, 3, 4})
        say()
        rows = [
            Row("1", "produce (acks=all)", produce[SERVE], produce[REDIS], "XADD pipelined", "rec/s", 1),
            Row("1", "produce (acks=all)", produce[SERVE], produce[REDIS_DURABLE], "XADD fsync=always", "rec/s", 1),
            Row("1", "produce (acks=all)", produce[SERVE], produce[MOCK], "mock cluster", "rec/s", 0.75),
            Row("2", "consume (group)", consume[SERVE], consume[REDIS], "XREADGROUP+XACK", "rec/s", 1),
            Row("2", "consume (group)", consume[SERVE], consume[REDIS_DURABLE], "XREADGROUP fsync=always", "rec/s", 1),
            Row("2", "consume (group)", consume[SERVE], consume[MOCK], "mock cluster", "rec/s", 0.75),
            Row("3", "produce->ack median", latency[SERVE].median(), latency[MOCK].median(), "mock cluster", "ms"),
            Row("3", "produce->ack p99", latency[SERVE].p99(), latency[MOCK].p99(), "mock cluster", "ms"),
            Row("4", "large records fetched", large[SERVE].mb_s, large[MOCK].mb_s, "mock cluster", "MB/s", 0.5),
            Row(
                "4",
                "large records produced",
                large[SERVE].produced_mb_s,
                large[MOCK].produced_mb_s,
                "mock cluster",
                "MB/s",
            ),
            Row("5", f"produce ({args.codec})", zipped_produce[SERVE], zipped_produce[MOCK], "mock cluster", "rec/s"),
            Row("5", f"consume ({args.codec})", zipped_consume[SERVE], zipped_consume[MOCK], "mock cluster", "rec/s"),
        ]
        print_rows(rows)
        say(
            f"\nratio = {SERVE} / reference (rec/s, MB/s: higher is better; ms: lower is better). Goals: {SERVE} "
            ">= 1x Redis Streams in both directions, >= 0.75x the mock cluster's rec/s, >= 0.5x its MB/s on large "
            "records:\n"
            f"  the mock cluster produces {produce[MOCK] / produce[SERVE]:.1f}x and consumes "
            f"{consume[MOCK] / consume[SERVE]:.1f}x as fast as {SERVE}; its median latency is "
            f"{latency[MOCK].median():.2f} ms against {latency[SERVE].median():.2f} ms.\n"
            f"{SERVE} fsyncs before answering acks=all; the mock cluster keeps everything in memory and runs in "
            "this process (C threads)."
        )
        if read[MOCK] < len(records):
            say(
                f"The mock cluster kept {read[MOCK]:,} of the {len(records):,} records (~5 MB per partition: "
                "librdkafka trims older message sets), so its consumer read those, and its consume rate is over them."
            )
        say(f"total time {time.perf_counter() - started:.0f} s")
    except BudgetExceeded:
        print(f"aborted: time budget of {args.budget}s exceeded", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
