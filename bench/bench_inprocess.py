"""A confluent-kafka producer in the process that runs ``lab.serve()``, against the same
producer on a separate ``streamlab serve`` process, in one run.

Run ``python bench/bench_inprocess.py`` (after ``pip install -e .[kafka,bench]``). A notebook
produces from its kernel while ``lab.serve()`` serves the Kafka protocol from a thread of
that same process (sharing its interpreter, its GIL and its two cores here). Both targets
keep their data in a temporary directory with ``acks=all`` meaning fsynced. For each:

* ``produce()`` paced at ``--rate`` records/s (default 1,000) for ``--seconds`` (5) seconds,
  ~40-byte JSON values keyed over 100 keys to a 3-partition topic, after a warm-up; each
  record's time from ``produce()`` to its delivery report, median and p99. The pacing loop
  is the one ``bench_quix.py`` first used: ``poll(min(1 ms, time to the next record))``,
  which mostly spins, so a Python thread is busy beside the server the whole time;
* two producers: librdkafka's defaults (``acks=all``, ``linger.ms=5``, not idempotent: any
  number of requests in flight) and idempotent (at most 5 in flight).

The separate ``streamlab serve`` process is the reference: the goal is that a producer in
the serving process sees latency comparable to it. Rounds alternate the targets
(``--repeat``, default 2) and every round is printed; the table shows each case's median
over the rounds. Figures on a shared machine move a lot between runs: compare within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import KafkaError, Producer

import streamlab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_wire import create_serve_topic, dropping_unsent, serve_process, wait_for_topic  # the sibling harness

PARTITIONS = 3
N_KEYS = 100
SERVE_IN, SERVE_OUT = "lab.serve() in process", "streamlab serve process"
PRODUCERS = {"default (not idempotent)": {}, "idempotent": {"enable.idempotence": True}}


def say(text: str = "") -> None:
    print(text, flush=True)


def paced(bootstrap: str, topic: str, extra: dict[str, Any], rate: int, seconds: float) -> list[float]:
    """Milliseconds from ``produce()`` to the delivery report of each record."""
    samples: list[float] = []
    errors: list[KafkaError] = []
    perf_counter = time.perf_counter

    def on_delivery(sent: float, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            samples.append((perf_counter() - sent) * 1000)

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **extra})
    with dropping_unsent(p):
        wait_for_topic(p, topic, PARTITIONS)
        for i in range(N_KEYS):
            p.produce(topic, b"{}", f"key-{i:03d}".encode())
        assert p.flush(30) == 0, "warm-up records not acknowledged"
        total = int(rate * seconds)
        start = perf_counter()
        for i in range(total):
            due = start + i / rate
            while (now := perf_counter()) < due:
                p.poll(min(0.001, due - now))
            sent = perf_counter()
            value = json.dumps({"cents": i % 1000, "sent": time.time()}).encode()
            p.produce(topic, value, f"key-{i % N_KEYS:03d}".encode(),
                      on_delivery=lambda err, msg, sent=sent: on_delivery(sent, err, msg))  # fmt: skip
        assert p.flush(120) == 0, "records not acknowledged within 120 s"
    assert not errors, f"{len(errors)} records failed, e.g. {errors[:3]}"
    assert len(samples) == total
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A producer in lab.serve()'s process vs a separate serve process.")
    parser.add_argument("--rate", type=int, default=1_000, help="records/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per case")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (each case once per round)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-inprocess-"))
    say(f"machine: nproc {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say(f"streamlab from {Path(streamlab.__file__).parent}")
    say(f"{args.rate:,} records/s for {args.seconds:g} s per case, {PARTITIONS} partitions, acks=all, linger.ms=5")
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    started = time.perf_counter()
    with (
        streamlab.connect(root / "lab") as lab,
        serve_process(root / "serve", root / "serve.log") as separate,
    ):
        targets: dict[str, tuple[str, Callable[[str], None]]] = {
            SERVE_IN: (lab.serve(), lambda t: lab.create_topic(t, partitions=PARTITIONS)),
            SERVE_OUT: (separate, lambda t: create_serve_topic(separate, t, PARTITIONS)),
        }
        for round_ in range(args.repeat):
            for producer, extra in PRODUCERS.items():
                for target, (bootstrap, create) in targets.items():
                    topic = f"lat-{uuid.uuid4().hex[:8]}"
                    create(topic)
                    s = paced(bootstrap, topic, extra, args.rate, args.seconds)
                    med, p99 = statistics.median(s), float(np.percentile(s, 99))
                    results.setdefault((producer, target), []).append((med, p99))
                    say(f"  round {round_ + 1}, {producer}, {target}: median {med:.1f} ms, p99 {p99:.1f} ms, "
                        f"max {max(s):.1f} ms")  # fmt: skip
    say()
    say(f"{'produce -> delivery report, ms':<42}{SERVE_IN:>24}{SERVE_OUT:>25}{'ratio':>8}")
    for producer in PRODUCERS:
        for i, what in enumerate(("median", "p99")):
            inside = statistics.median(r[i] for r in results[(producer, SERVE_IN)])
            outside = statistics.median(r[i] for r in results[(producer, SERVE_OUT)])
            say(f"{f'{producer}, {what}':<42}{inside:>24.1f}{outside:>25.1f}{inside / outside:>7.2f}x")
    say(f"ratio = in process / separate process (lower is better); median over {args.repeat} rounds; "
        f"total time {time.perf_counter() - started:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
