"""streamlab's embedded broker against references measured in the same run.

Run ``python bench/bench_embedded.py`` (after ``pip install -e .[bench]``). On ``--records``
clickstream-like records of about 100 bytes (a ``user-NNNN`` key among ~1,000, a JSON-object
value with a few fields) over 3 partitions it measures, side by side:

1. bulk produce: ``Producer.send_many`` of a DataFrame (durable, default acks) vs Redis
   ``XADD`` pipelined 1,000 at a time, in memory and with ``appendfsync always``;
2. one ``send`` per record in a Python loop, then ``flush``, vs the same Redis figure;
3. ``lab.replay`` of everything after ``lab.roll`` vs Redis ``XRANGE`` into a DataFrame, vs
   ``pq.read_table`` of the same Parquet files + ``to_pandas`` and vs DuckDB reading them;
4. ``Consumer.poll(max_records=1000)`` with a group committing per batch, and without a
   group, vs Redis ``XREADGROUP`` + ``XACK`` in batches of 1,000;
5. latency of one durable ``send(...).result()`` at a time beside one ``os.fsync`` of a small
   write on the same disk;
6. peak RSS of a fresh process producing ``--big-records`` records with ``send_many`` in
   chunks of 500,000 (``--skip-memory`` to skip).

Redis runs on a private loopback port (see ``redis_ref.py``) with its data in the same
temporary directory tree as streamlab's, and is killed at the end. Each section prints a
row: streamlab's figure, the reference figure, their ratio, the goal and whether it is met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import redis

import streamlab

sys.path.insert(0, str(Path(__file__).resolve().parent))
import redis_ref  # the sibling reference harness

PARTITIONS = 3
N_KEYS = 1000
BATCH = 1000
STREAMS = [f"clicks-{i}" for i in range(PARTITIONS)]
EVENTS = np.array(["page_view", "search", "add_to_cart", "purchase", "checkout"])
DEVICES = np.array(["desktop", "mobile", "tablet"])
CATEGORIES = np.array(["electronics", "books", "garden", "toys", "fashion", "sports", "grocery", "music"])


# data --------------------------------------------------------------------------------------
def clickstream(n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` clickstream rows: ``key`` (the user, ~1,000 of them, skewed popularity) and the
    value fields ``user``, ``event``, ``page``, ``amount``, ``device``."""
    rng = np.random.default_rng(seed)
    user_ids = (N_KEYS * rng.random(n) ** 2).astype(np.int64)
    users = np.array([f"user-{i:04d}" for i in range(N_KEYS)])[user_ids]
    # (no "/" in values: pandas' to_json escapes it as "\/", json.dumps does not)
    pages = np.array([f"{c}-{i:04d}" for c in CATEGORIES for i in range(100)])
    return pd.DataFrame(
        {
            "key": users,
            "user": users,
            "event": EVENTS[rng.integers(0, len(EVENTS), n)],
            "page": pages[rng.integers(0, len(pages), n)],
            "amount": rng.integers(100, 100_000, n) / 100,
            "device": DEVICES[rng.integers(0, len(DEVICES), n)],
        }
    )


def serialized(df: pd.DataFrame) -> list[tuple[bytes, bytes]]:
    """(key, value) bytes exactly as ``send_many(df, key="key")`` stores them."""
    lines = df.drop(columns=["key"]).to_json(orient="records", lines=True, date_format="iso", date_unit="ms")
    values = lines.encode().split(b"\n")[: len(df)]
    return [(k.encode(), v) for k, v in zip(df["key"].tolist(), values, strict=True)]


def value_dicts(df: pd.DataFrame) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, value dict) per row, built lazily the way a notebook loop would."""
    cols = [df[c].tolist() for c in ("key", "user", "event", "page", "amount", "device")]
    for k, u, e, p, a, d in zip(*cols, strict=True):
        yield k, {"user": u, "event": e, "page": p, "amount": a, "device": d}


# results -----------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    what: str
    ours: float
    ref: float
    ref_what: str
    unit: str  # "rec/s" (higher is better), "ms" (lower is better) or "MB"
    goal: float | None = None  # minimum ours/ref for rec/s; maximum ours/ref otherwise

    @property
    def ratio(self) -> float:
        return self.ours / self.ref if self.ref else float("nan")

    def goal_text(self) -> str:
        if self.goal is None:
            return "info"
        if self.unit == "rec/s":
            return f">= {self.goal:g}x" if self.goal >= 1 else f">= {self.goal:g}x (within {1 / self.goal:g}x)"
        return f"<= {self.goal:g}x"

    def met(self) -> str:
        if self.goal is None:
            return "-"
        ok = self.ratio >= self.goal if self.unit == "rec/s" else self.ratio <= self.goal
        return "met" if ok else "NOT MET"


def fmt(value: float, unit: str) -> str:
    if unit == "rec/s":
        return f"{value:,.0f} rec/s"
    if unit == "ms":
        return f"{value:.3f} ms"
    return f"{value:,.0f} MB"


def print_table(rows: Sequence[Row]) -> None:
    head = ("#", "what", "streamlab", "reference", "ratio", "goal", "result")
    table = [head] + [
        (
            r.section,
            r.what,
            fmt(r.ours, r.unit),
            f"{fmt(r.ref, r.unit)} ({r.ref_what})",
            f"{r.ratio:.2f}x",
            r.goal_text(),
            r.met(),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    right = {2, 3, 4}
    for i, line in enumerate(table):
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(line, widths, strict=True))]
        print("  ".join(cells).rstrip(), flush=True)
        if i == 0:
            print("  ".join("-" * w for w in widths), flush=True)


def say(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def timer(label: str, n: int) -> Iterator[list[float]]:
    """Times the block; yields a list that receives the seconds."""
    out: list[float] = []
    start = time.perf_counter()
    yield out
    seconds = time.perf_counter() - start
    out.append(seconds)
    say(f"  {label}: {seconds:.2f} s, {n / seconds:,.0f} rec/s")


def best_of(label: str, n: int, repeat: int, run: Callable[[], int]) -> float:
    """Best records/s of ``repeat`` runs of ``run`` (which returns how many rows it produced)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        rows = run()
        best = min(best, time.perf_counter() - start)
        check(rows == n, f"{label} gave {rows} rows, expected {n}")
    say(f"  {label}: {best:.2f} s, {n / best:,.0f} rec/s (best of {repeat})")
    return n / best


# reference: Redis ----------------------------------------------------------------------------
@dataclass
class RedisFigures:
    xadd: float = 0.0
    xadd_lean: float = 0.0
    xadd_durable: float = 0.0
    xrange: float = 0.0
    xrange_lean: float = 0.0
    xreadgroup: float = 0.0
    xreadgroup_lean: float = 0.0
    xreadgroup_durable: float = 0.0
    xadd_durable_latency: list[float] | None = None


def run_redis(records: Sequence[tuple[bytes, bytes]], latency_sends: int, repeat: int) -> RedisFigures:
    n = len(records)
    fig = RedisFigures()
    say("redis, in memory (--appendonly no):")
    with redis_server(durable=False) as r:
        fig.xadd = n / redis_ref.xadd_pipelined(r, STREAMS, records, BATCH)
        say(f"  xadd pipelined x{BATCH}: {fig.xadd:,.0f} rec/s")
        fig.xrange = best_of(
            "xrange -> DataFrame", n, repeat, lambda: len(redis_ref.xrange_to_dataframe(r, STREAMS)[0])
        )
        fig.xrange_lean = best_of(
            "xrange -> DataFrame (lean)",
            n,
            repeat,
            lambda: len(redis_ref.xrange_to_dataframe(r, STREAMS, lean=True)[0]),
        )
        fig.xreadgroup = n / redis_ref.xreadgroup_xack(r, STREAMS, "bench", BATCH)
        say(f"  xreadgroup + xack x{BATCH}: {fig.xreadgroup:,.0f} rec/s")
        fig.xreadgroup_lean = n / redis_ref.xreadgroup_xack(r, STREAMS, "bench", BATCH, lean=True)
        say(f"  xreadgroup + xack x{BATCH} (lean): {fig.xreadgroup_lean:,.0f} rec/s")
        r.flushall()
        fig.xadd_lean = n / redis_ref.xadd_pipelined(r, STREAMS, records, BATCH, lean=True)
        say(f"  xadd pipelined x{BATCH} (lean): {fig.xadd_lean:,.0f} rec/s")
    say("redis, durable (--appendonly yes --appendfsync always):")
    with redis_server(durable=True) as r:
        fig.xadd_durable = n / redis_ref.xadd_pipelined(r, STREAMS, records, BATCH)
        say(f"  xadd pipelined x{BATCH}: {fig.xadd_durable:,.0f} rec/s")
        fig.xreadgroup_durable = n / redis_ref.xreadgroup_xack(r, STREAMS, "bench", BATCH)
        say(f"  xreadgroup + xack x{BATCH}: {fig.xreadgroup_durable:,.0f} rec/s")
        lat = []
        for key, value in records[:latency_sends]:
            start = time.perf_counter()
            r.execute_command("XADD", "latency", "*", "k", key, "v", value)
            lat.append((time.perf_counter() - start) * 1000)
        fig.xadd_durable_latency = lat
        say(f"  one XADD at a time: median {statistics.median(lat):.3f} ms")
    return fig


@contextlib.contextmanager
def redis_server(*, durable: bool) -> Iterator[redis.Redis]:
    with redis_ref.redis_server(durable=durable, socket_timeout=120.0) as r:
        yield r


# streamlab ---------------------------------------------------------------------------------
def check(ok: bool, message: str) -> None:
    if not ok:
        raise RuntimeError(message)


def consume(lab: streamlab.Lab, topic: str, n: int, group: str | None) -> float:
    """Seconds to poll all ``n`` records in batches of 1,000 (committing each when in a group)."""
    with lab.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False) as c:
        got = 0
        start = time.perf_counter()
        while got < n:
            records = c.poll(timeout=1.0, max_records=BATCH)
            if not records:
                break
            got += len(records)
            if group is not None:
                c.commit()
        seconds = time.perf_counter() - start
    check(got == n, f"consumed {got} of {n} records")
    return seconds


def percentile(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def fsync_latency(directory: Path, count: int) -> list[float]:
    """Milliseconds of one small write + ``os.fsync`` on the disk holding ``directory``."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        out = []
        payload = b"x" * 100
        for _ in range(count):
            start = time.perf_counter()
            os.write(fd, payload)
            os.fsync(fd)
            out.append((time.perf_counter() - start) * 1000)
        return out
    finally:
        os.close(fd)
        path.unlink()


def send_latency(lab: streamlab.Lab, topic: str, df: pd.DataFrame, count: int, **config: Any) -> list[float]:
    out = []
    with lab.producer(**config) as p:
        for key, value in value_dicts(df.iloc[:count]):
            start = time.perf_counter()
            p.send(topic, value=value, key=key).result(timeout=30)
            out.append((time.perf_counter() - start) * 1000)
    return out


def parquet_files(lab: streamlab.Lab, topic: str) -> list[str]:
    return [str(log.segment_path(s)) for log in lab.backend.broker.topic(topic).logs for s in log.sealed_segments()]


def run_streamlab(root: Path, df: pd.DataFrame, fig: RedisFigures, args: argparse.Namespace) -> list[Row]:
    n = len(df)
    rows: list[Row] = []
    lab = streamlab.connect(root / "lab")
    try:
        # 1. bulk produce
        say("streamlab:")
        lab.create_topic("clicks", partitions=PARTITIONS)
        with lab.producer() as p, timer("send_many (acks=all)", n) as t:
            placed = p.send_many("clicks", df, key="key", progress=False)
        check(len(placed) == n, "send_many placed fewer rows than given")
        bulk = n / t[0]
        rows += [
            Row("1", "produce: send_many(DataFrame)", bulk, fig.xadd, "XADD pipelined", "rec/s", 2),
            Row("1", "produce: send_many(DataFrame)", bulk, fig.xadd_durable, "XADD fsync=always", "rec/s", 2),
            Row("1", "produce: send_many(DataFrame)", bulk, fig.xadd_lean, "XADD lean", "rec/s"),
        ]

        # 2. one send per record
        lab.create_topic("clicks_send", partitions=PARTITIONS)
        with lab.producer() as p, timer("send() loop of dicts + flush", n) as t:
            for key, value in value_dicts(df):
                p.send("clicks_send", value=value, key=key)
            p.flush()
        per_send = n / t[0]
        check(int(lab.offsets("clicks_send")["high_watermark"].sum()) == n, "send loop lost records")
        rows += [
            Row("2", "produce: send() per record (dict)", per_send, fig.xadd, "XADD pipelined", "rec/s", 1),
            Row("2", "produce: send() per record (dict)", per_send, fig.xadd_durable, "XADD fsync=always", "rec/s", 1),
        ]

        # 3. replay
        lab.roll("clicks")
        files = parquet_files(lab, "clicks")
        say(f"    replay columns: {list(lab.replay('clicks', end=1).columns)}")
        repeat = args.repeat
        replay = best_of("lab.replay", n, repeat, lambda: len(lab.replay("clicks")))
        arrow_all = best_of(
            "pq.read_table(files).to_pandas()", n, repeat, lambda: len(pq.read_table(files).to_pandas())
        )
        cols = ["offset", "timestamp", "key", "value_fields"]

        def arrow_same_columns() -> int:
            return len(pa.concat_tables([pq.read_table(f, columns=cols) for f in files]).flatten().to_pandas())

        label = "pq.read_table(files, replay's columns).flatten().to_pandas()"
        arrow_same = best_of(label, n, repeat, arrow_same_columns)
        file_list = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        select = (
            f'SELECT "offset", timestamp, decode(key) AS key, unnest(value_fields) FROM read_parquet([{file_list}])'
        )
        with duckdb.connect() as con:
            duck = best_of("duckdb read_parquet(files).df()", n, repeat, lambda: len(con.sql(select).df()))
        rows += [
            Row("3", "replay -> DataFrame", replay, fig.xrange, "XRANGE -> DataFrame", "rec/s", 5),
            Row("3", "replay -> DataFrame", replay, fig.xrange_lean, "XRANGE lean", "rec/s"),
            Row("3", "replay -> DataFrame", replay, arrow_all, "pq.read_table.to_pandas", "rec/s", 0.5),
            Row("3", "replay -> DataFrame", replay, arrow_same, "pq same columns", "rec/s", 0.5),
            Row("3", "replay -> DataFrame", replay, duck, "duckdb read_parquet.df", "rec/s"),
        ]

        # 4. consume
        with_group = n / consume(lab, "clicks", n, "bench")
        say(f"  poll x{BATCH} + commit per batch: {with_group:,.0f} rec/s")
        no_group = n / consume(lab, "clicks", n, None)
        say(f"  poll x{BATCH}, no group: {no_group:,.0f} rec/s")
        active = n / consume(lab, "clicks_send", n, None)
        say(f"  poll x{BATCH}, no group, unsealed topic: {active:,.0f} rec/s")
        grouped = "consume: poll + commit per batch"
        rows += [
            Row("4", grouped, with_group, fig.xreadgroup, "XREADGROUP+XACK", "rec/s", 2),
            Row("4", grouped, with_group, fig.xreadgroup_durable, "XREADGROUP fsync=always", "rec/s", 2),
            Row("4", grouped, with_group, fig.xreadgroup_lean, "XREADGROUP lean", "rec/s"),
            Row("4", "consume: poll, no group", no_group, fig.xreadgroup, "XREADGROUP+XACK", "rec/s", 2),
            Row("4", "consume: poll, no group, active segment", active, fig.xreadgroup, "XREADGROUP+XACK", "rec/s"),
        ]

        # 5. latency
        count = args.latency_sends
        fs = fsync_latency(root, count)
        lab.create_topic("latency", partitions=PARTITIONS)
        default = send_latency(lab, "latency", df, count)
        nolinger = send_latency(lab, "latency", df, count, linger_ms=0)
        lat_redis = fig.xadd_durable_latency or [float("nan")]
        for label, samples in (
            ("os.write + os.fsync (100 B)", fs),
            ("send().result(), default linger_ms=5", default),
            ("send().result(), linger_ms=0", nolinger),
            ("redis XADD one at a time, fsync=always", lat_redis),
        ):
            say(f"  {label}: median {statistics.median(samples):.3f} ms, p99 {percentile(samples, 99):.3f} ms")
        fs_med, fs_p99 = statistics.median(fs), percentile(fs, 99)
        rows += [
            Row("5", "send().result() median", statistics.median(default), fs_med, "fsync median", "ms"),
            Row("5", "send().result() p99", percentile(default, 99), fs_p99, "fsync p99", "ms"),
            Row("5", "send().result() linger_ms=0 median", statistics.median(nolinger), fs_med, "fsync median", "ms"),
            Row("5", "send().result() linger_ms=0 p99", percentile(nolinger, 99), fs_p99, "fsync p99", "ms"),
            Row("5", "(redis XADD fsync=always median)", statistics.median(lat_redis), fs_med, "fsync median", "ms"),
        ]
    finally:
        lab.close()
    return rows


# 6. memory, in a fresh process -------------------------------------------------------------------
def memory_now() -> dict[str, float]:
    """This process's ``ru_maxrss`` and, from /proc, its peak (VmHWM) and current (VmRSS) RSS, in MB."""
    out = {"maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    with contextlib.suppress(OSError), open("/proc/self/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                out[name] = int(value.split()[0]) / 1024
    return out


def memory_child(directory: Path, total: int, chunk: int) -> None:
    """Produce ``total`` records in ``chunk``-row send_many calls; print a JSON line per chunk."""
    print(json.dumps({"records": -1, **memory_now()}), flush=True)  # before making any data
    df = clickstream(chunk, seed=11)
    print(json.dumps({"records": 0, **memory_now()}), flush=True)
    lab = streamlab.connect(directory)
    lab.create_topic("big", partitions=PARTITIONS)
    sent = 0
    with lab.producer() as p:
        while sent < total:
            part = df if total - sent >= chunk else df.iloc[: total - sent]
            p.send_many("big", part, key="key", progress=False)
            sent += len(part)
            print(json.dumps({"records": sent, **memory_now()}), flush=True)
    check(int(lab.offsets("big")["high_watermark"].sum()) == total, "memory run lost records")
    lab.close()


def run_memory(root: Path, total: int, chunk: int, timeout: float) -> tuple[Row, list[str]]:
    """Section 6 in a fresh process. Run it before this process grows: on Linux a child's
    ``ru_maxrss`` starts at its parent's RSS at the time of the fork."""
    parent = memory_now().get("VmRSS", float("nan"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(root / "big")]
    cmd += ["--big-records", str(total), "--chunk", str(chunk)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    shutil.rmtree(root / "big", ignore_errors=True)
    points = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    lines = [
        f"memory: {total:,} records via send_many in chunks of {chunk:,} in a fresh process ({seconds:.1f} s; "
        f"it ran first, while this process had {parent:,.0f} MB resident)",
        f"  {'records':>22}  {'ru_maxrss':>9}  {'VmHWM':>8}  {'VmRSS':>8}",
    ]
    produced = [pt for pt in points if pt["records"] > 0]
    shown = {0, len(produced) - 1} | {round(q * (len(produced) - 1)) for q in (0.1, 0.25, 0.5, 0.75)}
    labels = {-1: "(after imports)", 0: "(chunk built)"}
    for pt in [pt for pt in points if pt["records"] <= 0] + [produced[i] for i in sorted(shown)]:
        label = labels.get(pt["records"], f"{pt['records']:,}")
        hwm, rss = pt.get("VmHWM", float("nan")), pt.get("VmRSS", float("nan"))
        lines.append(f"  {label:>22}  {pt['maxrss']:>6,.0f} MB  {hwm:>5,.0f} MB  {rss:>5,.0f} MB")
    quarter = next(pt for pt in produced if pt["records"] >= total / 4)
    row = Row(
        "6",
        f"peak RSS after {total:,} recs",
        produced[-1]["maxrss"],
        quarter["maxrss"],
        f"peak after {quarter['records']:,}",
        "MB",
        1.2,
    )
    return row, lines


# machine, budget, main ---------------------------------------------------------------------------
def fs_type(path: Path) -> str:
    best, kind = "", "?"
    with contextlib.suppress(OSError), open("/proc/mounts") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} on {parts[0]}"
    return kind


def describe_machine(root: Path) -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    say(f"machine: {platform.platform()}, nproc {cpus}, {platform.processor() or platform.machine()}")
    say(
        f"python {platform.python_version()}, streamlab {streamlab.__version__}, duckdb {duckdb.__version__}, "
        f"pyarrow {pa.__version__}, pandas {pd.__version__}, numpy {np.__version__}, "
        f"redis-py {redis.__version__}, redis-server {redis_ref._server_version()}"
    )
    say(f"data dir: {root} ({fs_type(root)})")
    with contextlib.suppress(OSError), open("/proc/loadavg") as fh:
        say(f"load average at start: {' '.join(fh.read().split()[:3])}")


class BudgetExceeded(BaseException):
    """Out of time (a BaseException so no ``except Exception`` on the way swallows it)."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise BudgetExceeded("benchmark time budget exceeded")


@contextlib.contextmanager
def budget(seconds: int) -> Iterator[None]:
    previous: Callable[[int, FrameType | None], Any] | int | None = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="streamlab embedded broker vs Redis Streams, pyarrow and DuckDB.")
    parser.add_argument("--records", type=int, default=1_000_000, help="records for sections 1-4")
    parser.add_argument("--big-records", type=int, default=10_000_000, help="records for the memory run")
    parser.add_argument("--chunk", type=int, default=500_000, help="send_many chunk in the memory run")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory run (section 6)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs for the section 3 reads")
    parser.add_argument("--latency-sends", type=int, default=2000, help="sends timed one at a time")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where data goes (default: system temp)")
    parser.add_argument("--budget", type=int, default=1500, help="abort after this many seconds")
    parser.add_argument("--memory-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.big_records, args.chunk)
        return 0
    if args.records < BATCH or args.latency_sends < 1 or args.repeat < 1:
        parser.error(f"--records must be at least {BATCH}, --latency-sends and --repeat at least 1")

    if args.tmp_dir is not None:
        args.tmp_dir.mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(args.tmp_dir)  # redis_ref's server directory goes there too
    root = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    started = time.perf_counter()
    try:
        with budget(args.budget):
            describe_machine(root)
            memory: tuple[Row, list[str]] | None = None
            if not args.skip_memory:  # first, while this process is small (see run_memory)
                memory = run_memory(root, args.big_records, args.chunk, args.budget)
                for line in memory[1]:
                    say(line)
            df = clickstream(args.records)
            records = serialized(df)
            sizes = np.array([len(k) + len(v) for k, v in records])
            first_key, first_value = next(value_dicts(df.iloc[:1]))
            same = json.dumps(first_value, separators=(",", ":")).encode() == records[0][1]
            say(
                f"data: {len(df):,} records over {PARTITIONS} partitions, {df['key'].nunique():,} distinct keys, "
                f"key+value {sizes.mean():.1f} bytes on average (min {sizes.min()}, max {sizes.max()})"
            )
            say(f"  e.g. key {first_key!r} value {records[0][1].decode()}")
            say(f"  send(dict) serialises to the same bytes as send_many/Redis: {same}")
            fig = run_redis(records, args.latency_sends, args.repeat)
            del records
            rows = run_streamlab(root, df, fig, args)
            del df
            if memory is not None:
                rows.append(memory[0])
        say("")
        print_table(rows)
        say(
            "\nratio = streamlab / reference (rec/s: higher is better; ms and MB: lower is better). "
            "'info' rows have no goal.\n"
            "lean = redis_ref's hand-packed XADD on one connection / GC paused during bulk reads "
            "(the strongest Redis client figure).\n"
            "Section 6 compares the peak RSS (ru_maxrss) at the end with the peak after a quarter of the "
            "records (flat: at most 1.2x); VmHWM is the child's own peak, unaffected by its parent."
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
