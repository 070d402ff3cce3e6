"""Redis Streams as a reference point for streamlab's benchmark figures.

Run ``python bench/redis_ref.py`` to start a throwaway ``redis-server`` on a free loopback port
and measure, on 200,000 records of ~100 bytes spread over 3 streams (like 3 partitions):

* produce: pipelined ``XADD`` (one round trip per ``batch`` records);
* scan: ``XRANGE`` of every stream into a pandas DataFrame;
* consume: ``XREADGROUP`` + ``XACK`` through a consumer group (acks ride in the same pipeline
  as the next read).

once with persistence off and once durable (``appendonly yes``, ``appendfsync always``), so
streamlab's figures measured in the same run can be compared with an in-memory and an fsync'ed
broker. The functions are importable for use from other benchmarks.

The reference is deliberately generous to Redis: it uses pipelines, the hiredis parser and raw
(unparsed) replies for the bulk reads, and the consumer only extracts what it needs to ack.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import math
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import hiredis
import pandas as pd
import redis
from redis._parsers import _HiredisParser

__all__ = [
    "Record",
    "make_records",
    "redis_server",
    "xadd_pipelined",
    "xrange_to_dataframe",
    "xreadgroup_xack",
]

Record = tuple[bytes, bytes]  # (key, value)
KEY_FIELD = b"k"
VALUE_FIELD = b"v"
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel SIGKILL redis-server if this process dies without cleaning up."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def redis_server(
    durable: bool = False, startup_timeout: float = 10.0, socket_timeout: float = 60.0
) -> Iterator[redis.Redis]:
    """Start a private ``redis-server`` on a free 127.0.0.1 port and yield a client to it.

    Persistence is off (``--save "" --appendonly no``) unless ``durable``, which turns on the
    append-only file with ``--appendfsync always`` (an fsync before replies are sent) in a
    temporary directory. The client returns ``bytes`` and uses the hiredis parser (checked).
    The server is killed and its directory removed on exit, whatever happens.
    """
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
    with tempfile.TemporaryDirectory(prefix="redis-ref-") as tmp:
        log = Path(tmp) / "redis.log"
        for _attempt in range(5):  # the free port may be taken between probe and bind: retry
            port = _free_port()
            cmd = [
                exe,
                *("--port", str(port), "--bind", HOST, "--dir", tmp, "--logfile", str(log)),
                *("--save", "", "--daemonize", "no", "--protected-mode", "yes", "--databases", "1"),
                *persistence,
            ]
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            client: redis.Redis | None = None
            try:
                client = _wait_ready(proc, port, startup_timeout, socket_timeout, log)
                if client is None:
                    continue  # lost the port race
                _check_hiredis(client)
                yield client
                return
            finally:
                if client is not None:
                    client.close()
                _stop(proc)
        raise RuntimeError(f"redis-server did not start; last log:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(
    proc: subprocess.Popen[bytes], port: int, timeout: float, socket_timeout: float, log: Path
) -> redis.Redis | None:
    """A client once the server answers PING; None if it exited because the port was taken."""
    deadline = time.monotonic() + timeout
    client = redis.Redis(host=HOST, port=port, socket_timeout=socket_timeout, socket_connect_timeout=1.0, protocol=2)
    while True:
        if proc.poll() is not None:
            client.close()
            text = _tail(log)
            if "Address already in use" in text:
                return None
            raise RuntimeError(f"redis-server exited with code {proc.returncode}:\n{text}")
        try:
            if client.ping():
                return client
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        except redis.BusyLoadingError:
            pass
        if time.monotonic() > deadline:
            client.close()
            raise RuntimeError(f"redis-server did not answer PING within {timeout}s:\n{_tail(log)}")
        time.sleep(0.01)


def _check_hiredis(client: redis.Redis) -> None:
    conn = client.connection_pool.get_connection()
    try:
        parser = getattr(conn, "_parser", None)
        if not isinstance(parser, _HiredisParser):
            raise RuntimeError(f"redis-py is not using hiredis (parser: {type(parser).__name__})")
    finally:
        client.connection_pool.release(conn)


@contextlib.contextmanager
def _raw_replies(r: redis.Redis, *commands: str) -> Iterator[None]:
    """Skip redis-py's per-entry reply post-processing (dicts per stream entry) for ``commands``."""
    callbacks: Any = r.response_callbacks
    saved = {c: callbacks.get(c) for c in commands}
    for c in commands:
        callbacks[c] = _identity
    try:
        yield
    finally:
        for c, cb in saved.items():
            if cb is None:
                callbacks.pop(c, None)
            else:
                callbacks[c] = cb


@contextlib.contextmanager
def _gc_paused(pause: bool = True) -> Iterator[None]:
    was_enabled = gc.isenabled()
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if pause and was_enabled:
            gc.enable()


def _identity(response: Any, **_options: Any) -> Any:
    return response


def partition_of(key: bytes, n: int) -> int:
    """The stream index of ``key`` among ``n`` streams (a stable hash, like a Kafka partitioner)."""
    return zlib.crc32(key) % n


def xadd_pipelined(
    r: redis.Redis,
    stream_names: Sequence[str | bytes],
    records: Sequence[Record],
    batch: int = 1000,
    *,
    lean: bool = False,
) -> float:
    """Append ``records`` to ``stream_names`` (chosen by key hash), ``batch`` XADDs per round trip.

    Each entry has two fields, ``k`` (the key) and ``v`` (the value). Returns wall seconds,
    including the partitioning. With ``lean`` the commands are packed with hiredis and written
    on one pooled connection directly (same wire traffic, without redis-py's per-command
    Pipeline bookkeeping, which otherwise dominates).
    """
    if batch <= 0:
        raise ValueError("batch must be positive")
    names = list(stream_names)
    if lean:
        return _xadd_lean(r, names, records, batch)
    n = len(names)
    crc32 = zlib.crc32
    start = time.perf_counter()
    for lo in range(0, len(records), batch):
        pipe = r.pipeline(transaction=False)
        execute_command = pipe.execute_command
        for key, value in records[lo : lo + batch]:
            execute_command("XADD", names[crc32(key) % n], "*", KEY_FIELD, key, VALUE_FIELD, value)
        pipe.execute()
    return time.perf_counter() - start


def _xadd_lean(r: redis.Redis, names: list[str | bytes], records: Sequence[Record], batch: int) -> float:
    n = len(names)
    crc32 = zlib.crc32
    # (hiredis' stub types the argument as a 1-tuple)
    pack: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command
    conn = r.connection_pool.get_connection()
    try:
        start = time.perf_counter()
        for lo in range(0, len(records), batch):
            chunk = records[lo : lo + batch]
            conn.send_packed_command(
                [
                    b"".join(
                        [pack((b"XADD", names[crc32(k) % n], b"*", KEY_FIELD, k, VALUE_FIELD, v)) for k, v in chunk]
                    )
                ],
                check_health=False,
            )
            read = conn.read_response
            for _ in range(len(chunk)):
                read()  # raises on an error reply
        return time.perf_counter() - start
    except BaseException:
        conn.disconnect()  # replies may be left unread: never reuse this connection as is
        raise
    finally:
        r.connection_pool.release(conn)


def xrange_to_dataframe(
    r: redis.Redis, streams: Sequence[str | bytes], page: int = 20_000, *, lean: bool = False
) -> tuple[pd.DataFrame, float]:
    """Read every entry of ``streams`` with paged XRANGE (one round trip per page for all streams)
    into a DataFrame with columns ``stream``, ``id`` (bytes), ``ts`` (datetime64[ms, UTC], from
    the entry id), ``key`` and ``value`` (bytes). Returns the frame and the wall seconds.

    Replies are taken raw (no per-entry dicts). With ``lean`` the cyclic garbage collector is
    paused meanwhile: the reply is millions of fresh Python objects, and the collections they
    trigger otherwise cost about as much as the parsing.
    """
    names = list(streams)
    cols: dict[str, list[Any]] = {"stream": [], "id": [], "key": [], "value": []}
    start = time.perf_counter()
    with _raw_replies(r, "XRANGE"), _gc_paused(lean):
        cursors: dict[int, bytes] = dict.fromkeys(range(len(names)), b"-")
        while cursors:
            pipe = r.pipeline(transaction=False)
            order = list(cursors)
            for i in order:
                pipe.execute_command("XRANGE", names[i], cursors[i], "+", "COUNT", page)
            for i, entries in zip(order, pipe.execute(), strict=True):
                if entries:
                    ids = [e[0] for e in entries]
                    cols["stream"].extend([names[i]] * len(entries))
                    cols["id"].extend(ids)
                    cols["key"].extend([e[1][1] for e in entries])
                    cols["value"].extend([e[1][3] for e in entries])
                if len(entries) < page:
                    del cursors[i]
                else:
                    cursors[i] = b"(" + entries[-1][0]
    ms = [int(i.partition(b"-")[0]) for i in cols["id"]]
    df = pd.DataFrame(cols)
    df.insert(2, "ts", pd.to_datetime(pd.Series(ms, dtype="int64"), unit="ms", utc=True))
    return df, time.perf_counter() - start


def _reset_group(r: redis.Redis, streams: Sequence[str | bytes], group: str) -> None:
    pipe = r.pipeline(transaction=False)
    for s in streams:
        pipe.execute_command("XGROUP", "DESTROY", s, group)
        pipe.execute_command("XGROUP", "CREATE", s, group, "0", "MKSTREAM")
    pipe.execute()


def xreadgroup_xack(
    r: redis.Redis,
    streams: Sequence[str | bytes],
    group: str,
    batch: int = 1000,
    consumer: str = "c1",
    *,
    lean: bool = False,
) -> float:
    """Consume every entry of ``streams`` through consumer group ``group`` (recreated at id 0).

    Each poll asks for ``ceil(batch / len(streams))`` entries per stream (about ``batch`` in
    all, like Kafka's ``max.poll.records``); the XACKs for a poll are pipelined with the next
    XREADGROUP, so a batch costs one round trip. Returns wall seconds (group setup excluded).
    Raises if not every entry was delivered and acknowledged. ``lean`` pauses the garbage
    collector meanwhile, as in :func:`xrange_to_dataframe`.
    """
    names = list(streams)
    per_stream = max(1, math.ceil(batch / len(names)))
    _reset_group(r, names, group)
    read_args: list[Any] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", per_stream, "STREAMS"]
    read_args += names + [">"] * len(names)
    delivered = 0
    start = time.perf_counter()
    with _raw_replies(r, "XREADGROUP"), _gc_paused(lean):
        reply: Any = r.execute_command(*read_args)
        while reply:
            pipe = r.pipeline(transaction=False)
            for stream, entries in reply:
                if entries:
                    delivered += len(entries)
                    pipe.execute_command("XACK", stream, group, *[e[0] for e in entries])
            pipe.execute_command(*read_args)
            reply = pipe.execute()[-1]
    elapsed = time.perf_counter() - start
    expected = sum(int(r.xlen(s)) for s in names)
    pending = 0
    for s in names:
        pending += int(r.xpending(s, group)["pending"])
    if delivered != expected or pending:
        raise RuntimeError(f"consumed {delivered} of {expected} entries, {pending} still pending")
    return elapsed


def make_records(n: int, size: int = 100, n_keys: int = 400, seed: int = 0) -> list[Record]:
    """``n`` deterministic records of ``size`` bytes in all (a ``user-NNNN`` key + random value)."""
    rng = random.Random(seed)
    keys = [f"user-{i:04d}".encode() for i in range(n_keys)]
    records = []
    for _ in range(n):
        key = keys[int(n_keys * rng.random() ** 2)]  # skewed key popularity
        records.append((key, rng.randbytes(max(0, size - len(key)))))
    return records


OPERATIONS = ("xadd (pipelined)", "xrange -> DataFrame", "xreadgroup + xack")


def run(records: Sequence[Record], durable: bool, batch: int, repeat: int, lean: bool) -> dict[str, float]:
    """Best-of-``repeat`` records/s for each operation against a fresh server."""
    streams = [f"bench-{i}" for i in range(3)]
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = max(best.get(name, 0.0), len(records) / seconds)

    with redis_server(durable=durable) as r:
        for _ in range(repeat):
            r.flushall()
            keep(OPERATIONS[0], xadd_pipelined(r, streams, records, batch, lean=lean))
            df, seconds = xrange_to_dataframe(r, streams, lean=lean)
            if len(df) != len(records):
                raise RuntimeError(f"XRANGE returned {len(df)} rows, expected {len(records)}")
            del df
            keep(OPERATIONS[1], seconds)
            keep(OPERATIONS[2], xreadgroup_xack(r, streams, "bench", batch, lean=lean))
    return best


class BudgetExceeded(BaseException):
    """The benchmark ran out of time (a BaseException, so that no retry or ``except Exception``
    on the way, e.g. redis-py's retry-on-timeout, can swallow it)."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise BudgetExceeded("benchmark time budget exceeded")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redis Streams reference figures.")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100, help="bytes per record (key + value)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2, help="report the best of this many runs")
    parser.add_argument("--budget", type=int, default=300, help="abort after this many seconds")
    args = parser.parse_args(argv)

    previous: Callable[[int, FrameType | None], Any] | int | None = None
    if hasattr(signal, "SIGALRM"):
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(args.budget)
    try:
        records = make_records(args.records, args.size)
        print(
            f"redis-server {_server_version()}, redis-py {redis.__version__} (hiredis), "
            f"{len(records):,} records of {args.size} bytes over 3 streams, batch {args.batch}, "
            f"best of {args.repeat}"
        )
        columns = [(d, lean) for d in (False, True) for lean in (False, True)]
        results = [run(records, d, args.batch, args.repeat, lean) for d, lean in columns]
        heads = [("durable" if d else "in-memory") + (" lean" if lean else "") for d, lean in columns]
        print("records/s".ljust(22) + "".join(h.rjust(18) for h in heads))
        for op in OPERATIONS:
            print(op.ljust(22) + "".join(f"{res[op]:>18,.0f}" for res in results))
        print(
            "in-memory: --save '' --appendonly no; durable: --appendonly yes --appendfsync always.\n"
            "lean: XADDs hand-packed with hiredis on one connection instead of a redis-py Pipeline,\n"
            "      and the garbage collector paused during the bulk reads."
        )
    except BudgetExceeded:
        print(f"aborted: time budget of {args.budget}s exceeded", file=sys.stderr)
        return 2
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
    return 0


def _server_version() -> str:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return "?"


if __name__ == "__main__":
    sys.exit(main())
