"""Consumer groups on the embedded broker, against Redis Streams measured in the same run.

Run ``python bench/bench_groups.py`` (after ``pip install -e .[bench]``). It measures:

1. throughput of a 3-member group (threads in one process) consuming ``--records`` records
   from 6 partitions with a commit after every batch, beside one consumer alone and beside
   Redis Streams ``XREADGROUP`` + ``XACK`` over 6 streams;
2. failover: the time from a member's death (it stops heartbeating and polling, like a
   killed process) until its partitions are consumed again, for a given session timeout;
3. how long a rebalance stops the partitions that do not move: with ``cooperative-sticky``
   it should be zero; the eager ``range`` assignor stops every partition.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

import streamlab
from streamlab.client.consumer import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import redis_ref  # the sibling reference harness

PARTITIONS = 6


def frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "user": [f"user-{i:04d}" for i in rng.integers(0, 1000, n)],
            "page": [f"/product/{i}" for i in rng.integers(0, 5000, n)],
            "amount": np.round(rng.random(n) * 100, 2),
        }
    )


def group_throughput(lab: streamlab.Lab, topic: str, members: int, n: int, group: str) -> float:
    consumers = [
        lab.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False)
        for _ in range(members)
    ]
    counts = [0] * members
    done = threading.Event()
    total_lock = threading.Lock()
    total = [0]

    def work(i: int) -> None:
        c = consumers[i]
        while not done.is_set():
            got = c.poll(timeout=0.2, max_records=1000)
            if got:
                c.commit()
                counts[i] += len(got)
                with total_lock:
                    total[0] += len(got)
                    if total[0] >= n:
                        done.set()

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(members)]
    for t in threads:
        t.start()
    done.wait(timeout=600)
    elapsed = time.perf_counter() - start
    done.set()
    for t in threads:
        t.join()
    for c in consumers:
        c.close()
    print(f"   {members} member(s): per member {counts}")
    return total[0] / elapsed


def failover(lab: streamlab.Lab, topic: str, session_timeout_ms: int) -> float:
    group = f"failover-{session_timeout_ms}"
    a = lab.consumer([topic], group=group, session_timeout_ms=session_timeout_ms, auto_offset_reset="latest")
    b = lab.consumer([topic], group=group, session_timeout_ms=session_timeout_ms, auto_offset_reset="latest")
    deadline = time.monotonic() + 30
    while not (a.assignment() and b.assignment() and len(a.assignment() | b.assignment()) == PARTITIONS):
        if time.monotonic() > deadline:
            raise RuntimeError("group never settled")
        a.poll(timeout=0.01)
        b.poll(timeout=0.01)
    b_parts = {tp.partition for tp in b.assignment()}
    with lab.producer() as p:  # keep records flowing into b's partitions
        died = time.monotonic()
        b._die()
        while time.monotonic() - died < session_timeout_ms / 1000 * 4 + 5:
            for part in b_parts:
                p.send(topic, value={"probe": True}, partition=part)
            got = a.poll(timeout=0.01, max_records=100)
            if any(r.partition in b_parts for r in got):
                recovered = time.monotonic() - died
                a.close()
                return recovered
    a.close()
    raise RuntimeError("partitions were never consumed again")


def rebalance_stall(lab: streamlab.Lab, topic: str, assignor: str) -> tuple[float, float, float]:
    """Longest gap between records of one partition, in ms: with no rebalance (the noise
    floor), for partitions that kept their owner through a rebalance, and for ones that moved."""
    group = f"stall-{assignor}"
    stop = threading.Event()

    def produce() -> None:
        with lab.producer(linger_ms=1) as p:
            while not stop.is_set():
                for part in range(PARTITIONS):
                    p.send(topic, value={"t": time.monotonic()}, partition=part)
                time.sleep(0.002)

    producer = threading.Thread(target=produce)
    producer.start()
    first = lab.consumer([topic], group=group, assignor=assignor, auto_offset_reset="latest")
    last_seen: dict[int, float] = {}
    gaps: dict[int, float] = {}

    def track(c: Consumer) -> None:
        now = time.monotonic()
        for r in c.poll(timeout=0.005, max_records=500):
            prev = last_seen.get(r.partition)
            if prev is not None:
                gaps[r.partition] = max(gaps.get(r.partition, 0.0), now - prev)
            last_seen[r.partition] = now

    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        track(first)
    owned_before = {tp.partition for tp in first.assignment()}
    floor = max(gaps.values(), default=0.0) * 1000
    gaps.clear()
    second = lab.consumer([topic], group=group, assignor=assignor, auto_offset_reset="latest")
    end = time.monotonic() + 3
    while time.monotonic() < end:
        track(first)
        track(second)
    kept = {tp.partition for tp in first.assignment()} & owned_before
    moved = owned_before - kept
    stop.set()
    producer.join()
    first.close()
    second.close()
    worst_kept = max((gaps.get(p, 0.0) for p in kept), default=0.0) * 1000
    worst_moved = max((gaps.get(p, 0.0) for p in moved), default=0.0) * 1000
    return floor, worst_kept, worst_moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    n = args.records
    df = frame(n)
    print(f"# streamlab consumer groups: {n:,} records over {PARTITIONS} partitions")
    with tempfile.TemporaryDirectory(prefix="bench-groups-") as tmp, streamlab.connect(tmp) as lab:
        lab.create_topic("clicks", partitions=PARTITIONS)
        with lab.producer() as p:
            p.send_many("clicks", df, key="user")
        alone = group_throughput(lab, "clicks", 1, n, "alone")
        three = group_throughput(lab, "clicks", 3, n, "three")
        records = [
            (u.encode(), v.encode())
            for u, v in zip(df["user"], df.drop(columns="user").to_json(orient="records", lines=True).splitlines(),
                            strict=True)
        ]  # fmt: skip
        streams = [f"clicks-{i}" for i in range(PARTITIONS)]
        with redis_ref.redis_server() as r:
            redis_ref.xadd_pipelined(r, streams, records)
            redis_seconds = redis_ref.xreadgroup_xack(r, streams, "g", batch=1000)
        redis_rate = n / redis_seconds
        print("\n| what | streamlab | reference | ratio |")
        print("|---|---|---|---|")
        print(f"| 1 consumer, commit per batch | {alone:,.0f} rec/s | Redis XREADGROUP+XACK {redis_rate:,.0f} rec/s "
              f"| {alone / redis_rate:.2f}x |")  # fmt: skip
        print(f"| 3-member group (threads), commit per batch | {three:,.0f} rec/s | 1 consumer {alone:,.0f} rec/s "
              f"| {three / alone:.2f}x |")  # fmt: skip
        print(f"| 3-member group vs Redis | {three:,.0f} rec/s | {redis_rate:,.0f} rec/s | {three / redis_rate:.2f}x |")
        lab.create_topic("live", partitions=PARTITIONS)
        for timeout_ms in (1000, 3000):
            seconds = failover(lab, "live", timeout_ms)
            print(f"| failover, session.timeout.ms={timeout_ms} | {seconds * 1000:,.0f} ms | "
                  f"session timeout {timeout_ms} ms | {seconds * 1000 / timeout_ms:.2f}x |")  # fmt: skip
        for assignor in ("cooperative-sticky", "range"):
            floor, kept, moved = rebalance_stall(lab, "live", assignor)
            print(f"| {assignor}: longest pause of a partition that stayed / moved | {kept:,.0f} ms / "
                  f"{moved:,.0f} ms | no rebalance: {floor:,.0f} ms | {kept / max(floor, 1):.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
