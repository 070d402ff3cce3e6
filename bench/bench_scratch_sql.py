"""streamlab's own small queries on a scratch DuckDB cursor beside opening a database each time.

Run ``python bench/bench_scratch_sql.py [--calls 50]``. Each figure is the mean time of one
call over ``--calls`` calls (best of ``--repeat`` rounds). The query is ``send_many``'s: 8
rows of a registered Arrow table turned into JSON objects. The reference opens an in-memory
database for the query and closes it after (what ``send_many``, a replay, a poll's frame and
a browse page each did before ``model.scratch_sql``); the ratio is the reference's time over
the scratch cursor's. Then ``send_many`` of 8 rows and the replay of those rows with headers
(not the plain path: through DuckDB), end to end.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from timing import best_seconds

import streamlab
from streamlab.model.scratch_sql import scratch_cursor

QUERY = "SELECT json_object('n', c0, 's', c1)::BLOB AS v FROM frame"
TABLE = pa.table({"c0": list(range(8)), "c1": [f"s{i}" for i in range(8)]})


def _own_database() -> int:
    con = duckdb.connect(":memory:")
    try:
        con.register("frame", TABLE)
        return con.sql(QUERY).to_arrow_table().num_rows
    finally:
        con.close()


def _scratch() -> int:
    with scratch_cursor() as con:
        con.register("frame", TABLE)
        return con.sql(QUERY).to_arrow_table().num_rows


def _per_call(calls: int, repeat: int, one: Callable[[], int], rows: int) -> float:
    def run() -> int:
        return sum(one() for _ in range(calls))

    best, _ = best_seconds(repeat, run, rows * calls)
    return best / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    own = _per_call(args.calls, args.repeat, _own_database, 8)
    scratch = _per_call(args.calls, args.repeat, _scratch, 8)
    print(f"query on a database of its own: {own * 1000:7.2f} ms/call")
    print(f"query on a scratch cursor:      {scratch * 1000:7.2f} ms/call   ratio {own / scratch:5.0f}x")
    frame = pd.DataFrame({"n": range(8), "s": [f"s{i}" for i in range(8)]})
    with tempfile.TemporaryDirectory() as tmp, streamlab.connect(Path(tmp) / "lab") as lab:
        lab.create_topic("t")
        with lab.producer() as producer:

            def send() -> int:
                producer.send_many("t", frame)
                return 8

            sent = _per_call(args.calls, args.repeat, send, 8)
            producer.flush(30)
        total = 8 * args.calls * args.repeat
        replayed = _per_call(args.calls, args.repeat, lambda: len(lab.replay("t", headers=True, progress=False)), total)
    print(f"send_many of 8 rows:            {sent * 1000:7.2f} ms/call")
    print(f"replay of {total} rows with headers: {replayed * 1000:7.2f} ms/call")


if __name__ == "__main__":
    main()
