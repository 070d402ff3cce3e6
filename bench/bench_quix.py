"""A Quix Streams application on ``lab.serve()`` against the same application on librdkafka's
mock cluster, in one run.

Run ``python bench/bench_quix.py`` with ``$STREAMLAB_JOBS_PYTHON`` naming an environment with
Quix Streams (``streamlab jobs setup .venv-quix``); needs ``pip install -e .[kafka]``. The
application is ``bench/quix_app.py``: per key (100 keys), the sum of a field in tumbling 1 s
event-time windows, its state in RocksDB with a changelog topic, run as a subprocess in the
jobs environment. Everything is on 127.0.0.1:

1. throughput: ``--records`` records (~40 bytes, 3 partitions, event times 1 ms apart) are
   produced before the application starts; it reports the time from its first record to its
   last (startup, topic checks and the group join excluded), best of ``--repeat`` rounds,
   each round a fresh group (and fresh state). Goal: ``lab.serve()`` >= 0.8x the mock.
2. latency: once a probe record every 100 ms gets results back (the application has joined
   its group), records are produced at ``--rate`` records/s for 1 + ``--latency-seconds``
   seconds with their send time in the value, by a producer configured as Quix's own
   (idempotent, ``acks=all``, ``linger.ms=5``); the application writes the window's current
   value (``.current()``) on every record, and a consumer in this process takes, for each
   window result, the time from the newest record's send to the result arriving: event
   produced -> window result visible, median and p99 (the first second is left out).

Targets: (a) an embedded lab's ``lab.serve()`` in this process (data in a temporary
directory, fsynced as always); (b) ``streamlab.kafka.MockCluster(brokers=1)``, librdkafka's
in-memory broker written in C, in this process. The mock has no CreateTopics or
DescribeConfigs, so every topic (the changelog too) is created here first, and the
application answers Quix's topic inspection from metadata on both targets alike.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import confluent_kafka
import numpy as np
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

import streamlab
from streamlab.front.jobs import jobs_python
from streamlab.kafka.mock_cluster import MockCluster

APP = Path(__file__).with_name("quix_app.py")
PARTITIONS = 3
N_KEYS = 100
SERVE, MOCK = "lab.serve()", "mock cluster"
GOAL = 0.8
STORES = {"throughput": "tumbling_window_1000_sum", "latency": "tumbling_window_1000_reduce"}
INPUT = {"throughput": "clicks", "latency": "clicks-live"}
OUTPUT = {"throughput": "windows", "latency": "windows-live"}


def say(text: str = "") -> None:
    print(text, flush=True)


class Target:
    """A broker to run the application on: its bootstrap address and how to create a topic."""

    def __init__(self, name: str, bootstrap: str, create: Callable[[str], None]) -> None:
        self.name, self.bootstrap, self.create = name, bootstrap, create

    def topics_for(self, mode: str) -> str:
        """Fresh input, output and changelog topics; returns the group they belong to."""
        group = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
        for topic in (INPUT[mode], OUTPUT[mode], f"changelog__{group}--{INPUT[mode]}--{STORES[mode]}"):
            with contextlib.suppress(Exception):  # input and output exist after the first round
                self.create(topic)
        return group


@contextlib.contextmanager
def application(target: Target, mode: str, group: str, root: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    child = dict(os.environ)
    state = str(root / "state" / group)
    child.update(STREAMLAB_BROKER=target.bootstrap, STREAMLAB_GROUP=group, STREAMLAB_JOB_STATE_DIR=state,
                 BENCH_MODE=mode, BENCH_INPUT=INPUT[mode], BENCH_OUTPUT=OUTPUT[mode], **env)  # fmt: skip
    proc = subprocess.Popen([jobs_python(), str(APP)], env=child, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def produce_input(bootstrap: str, n: int, *, start_ms: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "delivery.report.only.error": True})
    for i in range(n):
        while True:
            try:
                p.produce("clicks", json.dumps({"cents": i % 1000}).encode(), f"key-{i % N_KEYS:03d}".encode(),
                          timestamp=start_ms + i)  # fmt: skip
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0, "input records not acknowledged"


def throughput_round(target: Target, n: int, root: Path) -> float:
    group = target.topics_for("throughput")
    with application(target, "throughput", group, root, BENCH_RECORDS=str(n), IDLE_TIMEOUT="3") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("processed"):
                seconds = float(line.split(" in ")[1].split()[0])
                return n / seconds
    raise RuntimeError(f"the application on {target.name} exited with {proc.returncode} before processing {n} records")


def latency_run(target: Target, rate: int, seconds: float, root: Path) -> list[float]:
    group = target.topics_for("latency")
    consumer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": f"reader-{group}",
                         "enable.auto.commit": False})  # fmt: skip
    samples: list[float] = []
    samples_seen = [0]  # every result read, warm-up included
    stop = threading.Event()
    warm_until = float("inf")

    def read() -> None:
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error() is not None:
                continue
            arrived = time.time()
            sent = json.loads(message.value())["value"]["sent"]
            samples_seen[0] += 1
            if sent >= warm_until:
                samples.append((arrived - sent) * 1000)

    try:
        end = {p: OFFSET_END for p in range(PARTITIONS)}
        consumer.assign([TopicPartition(OUTPUT["latency"], p, o) for p, o in end.items()])
        with application(target, "latency", group, root, IDLE_TIMEOUT="30") as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", "the application did not start"
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            # configured as Quix's own producer: idempotent (so at most 5 requests in flight), linger 5 ms
            p = Producer({"bootstrap.servers": target.bootstrap, "linger.ms": 5, "enable.idempotence": True})

            def send(i: int) -> None:
                sent = time.time()
                p.produce(INPUT["latency"], json.dumps({"cents": 1, "sent": sent}).encode(),
                          f"key-{i % N_KEYS:03d}".encode(), timestamp=int(sent * 1000))  # fmt: skip

            # a probe every 100 ms until results come back: the application has joined its group
            # and has no backlog when the paced run starts
            deadline = time.monotonic() + 120
            while not samples_seen[0]:
                assert time.monotonic() < deadline, f"no window results from {target.name} within 120 s"
                send(0)
                p.poll(0.1)
            warm_until = time.time() + 1.0
            total = int(rate * (seconds + 1))
            start = time.perf_counter()
            for i in range(total):
                due = start + i / rate
                while (now := time.perf_counter()) < due:
                    p.poll(min(0.001, due - now))
                send(i)
            assert p.flush(30) == 0
            time.sleep(2.0)  # the last results
            stop.set()
            reader.join(timeout=10)
    finally:
        stop.set()
        consumer.close()
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A Quix Streams application on lab.serve() vs the mock cluster.")
    parser.add_argument("--records", type=int, default=150_000, help="input records of the throughput rounds")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many throughput rounds")
    parser.add_argument("--rate", type=int, default=1_000, help="records/s of the latency run")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="measured length of the latency run")
    args = parser.parse_args(argv)
    probe = subprocess.run([jobs_python(), "-c", "import quixstreams; print(quixstreams.__version__)"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    if probe.returncode != 0:
        sys.exit(f"no Quix Streams in {jobs_python()}: streamlab jobs setup .venv-quix; set STREAMLAB_JOBS_PYTHON")
    root = Path(tempfile.mkdtemp(prefix="bench-quix-"))
    say(f"machine: nproc {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say(f"quixstreams {probe.stdout.strip()} in {jobs_python()}; this process: confluent-kafka "
        f"{importlib.metadata.version('confluent-kafka')}, librdkafka {confluent_kafka.libversion()[0]}")  # fmt: skip
    started = time.perf_counter()
    with streamlab.connect(root / "lab") as lab, MockCluster(brokers=1) as mock:
        targets = [
            Target(SERVE, lab.serve(), lambda t: lab.create_topic(t, partitions=PARTITIONS)),
            Target(MOCK, mock.bootstrap, lambda t: mock.create_topic(t, PARTITIONS, replication=1)),
        ]
        for target in targets:
            target.create("clicks")
            produce_input(target.bootstrap, args.records, start_ms=1_767_600_000_000)
        say(f"throughput: {args.records:,} records over {PARTITIONS} partitions, {N_KEYS} keys, "
            f"best of {args.repeat}")  # fmt: skip
        best = dict.fromkeys([t.name for t in targets], 0.0)
        for round_ in range(args.repeat):
            for target in targets:
                rate = throughput_round(target, args.records, root)
                best[target.name] = max(best[target.name], rate)
                say(f"  round {round_ + 1}, {target.name}: {rate:,.0f} rec/s")
        say(f"latency: {args.rate:,} records/s for {args.latency_seconds:g} s (+1 s warm-up), tumbling 1 s .current()")
        latency: dict[str, list[float]] = {}
        for target in targets:
            latency[target.name] = latency_run(target, args.rate, args.latency_seconds, root)
            s = latency[target.name]
            say(f"  {target.name}: {len(s):,} window results: median {statistics.median(s):.1f} ms, "
                f"p99 {np.percentile(s, 99):.1f} ms, max {max(s):.1f} ms")  # fmt: skip
    ratio = best[SERVE] / best[MOCK]
    med = {n: statistics.median(s) for n, s in latency.items()}
    p99 = {n: float(np.percentile(s, 99)) for n, s in latency.items()}
    say()
    say(f"{'what':<42}{SERVE:>16}{MOCK:>16}{'ratio':>8}  goal")
    say(f"{'Quix app throughput, rec/s':<42}{best[SERVE]:>16,.0f}{best[MOCK]:>16,.0f}{ratio:>7.2f}x  "
        f">= {GOAL}x: {'met' if ratio >= GOAL else 'NOT MET'}")  # fmt: skip
    say(f"{f'produced -> window result median @{args.rate}/s, ms':<42}{med[SERVE]:>16.1f}{med[MOCK]:>16.1f}"
        f"{med[SERVE] / med[MOCK]:>7.2f}x  info")  # fmt: skip
    say(f"{f'produced -> window result p99 @{args.rate}/s, ms':<42}{p99[SERVE]:>16.1f}{p99[MOCK]:>16.1f}"
        f"{p99[SERVE] / p99[MOCK]:>7.2f}x  info")  # fmt: skip
    say(f"ratio = {SERVE} / {MOCK} (rec/s: higher is better; ms: lower is better); "
        f"total time {time.perf_counter() - started:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
