"""Replay of just-produced data beside pyarrow reading the same rows from one Parquet file.

Run ``python bench/bench_fresh.py [--records 1000000]``. The clickstream frame of
``bench_embedded.py`` is sent with ``send_many`` to a 3-partition topic and replayed at
once, with no ``lab.roll()``: what a notebook does in the cell after producing. The
reference writes the rows replay returned (the same columns: partition, offset, timestamp,
key and the value fields) to one Parquet file (zstd, as segments are) and times
``pq.read_table(file).to_pandas()``. Then the topic is sealed (``lab.roll()``, which is
what ``segment.ms`` does on its own a minute later) and replayed again. Each figure is
the best of ``--repeat`` runs; the ratios are replay time over pyarrow time (the goal is
2x or less).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import streamlab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embedded import clickstream  # the same rows as the main bench
from timing import best_seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n = args.records
    df = clickstream(n)
    with tempfile.TemporaryDirectory(prefix="streamlab-bench-fresh-") as tmp:
        root = Path(tmp)
        reference = root / "replayed.parquet"
        lab = streamlab.connect(root / "lab")
        try:
            lab.create_topic("clicks", partitions=3)
            start = time.perf_counter()
            with lab.producer() as producer:
                producer.send_many("clicks", df, key="key", progress=False)
            produce = time.perf_counter() - start
            first = time.perf_counter()
            replayed = lab.replay("clicks", progress=False)
            first_replay = time.perf_counter() - first
            columns = list(replayed.columns)
            pq.write_table(pa.Table.from_pandas(replayed, preserve_index=False), reference, compression="zstd")
            del replayed
            fresh, _ = best_seconds(args.repeat, lambda: len(lab.replay("clicks", progress=False)), n)
            arrow, _ = best_seconds(args.repeat, lambda: len(pq.read_table(reference).to_pandas()), n)
            sealed_before = sum(len(log.sealed_segments()) for log in lab.backend.broker.topic("clicks").logs)
            lab.roll("clicks")
            sealed, _ = best_seconds(args.repeat, lambda: len(lab.replay("clicks", progress=False)), n)
        finally:
            lab.close()
    print(f"# replay of a just-produced {n:,}-row topic (3 partitions) vs pyarrow on one Parquet file\n")
    print(f"send_many: {produce:.2f} s; sealed segments right after it: {sealed_before}")
    print(f"replay columns: {columns}")
    print(f"first replay after send_many: {first_replay:.3f} s\n")
    print(f"| what | seconds (best of {args.repeat}) | pyarrow read_table.to_pandas | ratio (goal <= 2x) |")
    print("|---|---|---|---|")
    for label, seconds in (("replay, just produced (no roll)", fresh), ("replay after lab.roll()", sealed)):
        ratio = seconds / arrow
        print(f"| {label} | {seconds:.3f} | {arrow:.3f} | {ratio:.2f}x {'met' if ratio <= 2 else 'NOT MET'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
