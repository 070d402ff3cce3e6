"""Replay of Avro values in Confluent's wire format beside the same rows as JSON, and beside
fastavro decoding the same payloads into a pandas frame by hand.

Run ``python bench/bench_registry.py [--records 200000]``. The clickstream rows of
``bench_embedded.py`` plus an ``id`` (long), an ``at`` time (timestamp-millis) and a
nullable ``score`` (``["null", "long"]``) go to three topics of an embedded lab, all
sealed (``lab.roll()``) before reading:

- ``avro``: ``send_many(df, value_format="avro")``, the schema derived from the dtypes and
  registered in the lab's registry, what a Kafka application with Confluent's
  AvroSerializer writes;
- ``json``: the same rows as JSON objects, as a plain Kafka producer writes them (one
  ``send`` of ``orjson.dumps(row)`` bytes per row);
- ``typed``: ``send_many(df)``, streamlab's own JSON with typed columns.

The reference takes the Avro payloads (``lab.replay("avro", value_format="bytes")``,
untimed) and times ``pd.DataFrame.from_records([fastavro.schemaless_reader(...) for each
payload])``: what a notebook would do by hand (its columns untyped: times as datetime
objects, no nullable ints). Each figure is the best of ``--repeat`` runs; the ratios are
over the reference.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

import streamlab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embedded import clickstream  # the same rows as the main bench
from timing import best_seconds


def rows(n: int) -> pd.DataFrame:
    df = clickstream(n).drop(columns=["key"])
    df.insert(0, "id", np.arange(n, dtype=np.int64))
    df["at"] = pd.to_datetime(1_767_225_600_000 + np.arange(n, dtype=np.int64), unit="ms", utc=True)
    df["score"] = pd.array([None if i % 10 == 0 else i for i in range(n)], dtype="Int64")
    return df


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n = args.records
    df = rows(n)
    import fastavro

    with tempfile.TemporaryDirectory(prefix="streamlab-bench-registry-") as tmp:
        lab = streamlab.connect(Path(tmp) / "lab")
        try:
            with lab.producer() as producer:
                producer.send_many("avro", df, value_format="avro", progress=False)
                producer.send_many("typed", df, progress=False)
                plain = df.assign(at=df["at"].map(lambda t: t.isoformat()))
                for row in plain.to_dict(orient="records"):
                    producer.send("json", value=orjson.dumps({k: (None if v is pd.NA else v) for k, v in row.items()}))
                producer.flush(60)
            for topic in ("avro", "typed", "json"):
                lab.roll(topic)
            schema = lab.schemas.latest("avro-value").schema.schema
            parsed = fastavro.parse_schema(orjson.loads(schema))
            payloads = lab.replay("avro", value_format="bytes", progress=False)["value"].tolist()
            decoded = lab.replay("avro", progress=False)
            columns, dtypes = list(decoded.columns), {c: str(t) for c, t in decoded.dtypes.items()}
            del decoded

            def reference() -> int:
                read = fastavro.schemaless_reader
                frame = pd.DataFrame.from_records([read(io.BytesIO(p[5:]), parsed, None) for p in payloads])
                return len(frame)

            avro = best_seconds(args.repeat, lambda: len(lab.replay("avro", progress=False)), n)
            json = best_seconds(args.repeat, lambda: len(lab.replay("json", progress=False)), n)
            typed = best_seconds(args.repeat, lambda: len(lab.replay("typed", progress=False)), n)
            by_hand = best_seconds(args.repeat, reference, n)
        finally:
            lab.close()
    print(f"# replay of {n:,} Avro-framed rows vs the same rows as JSON vs fastavro by hand\n")
    print(f"Avro schema (derived by send_many): {schema}")
    print(f"replay columns: {columns}")
    print(f"dtypes: {dtypes}\n")
    print(f"| what | wall s (best of {args.repeat}) | CPU s | rows/s (wall) | ratio to fastavro by hand (wall, CPU) |")
    print("|---|---|---|---|---|")
    for label, seconds in (
        ("replay, Avro (Confluent wire format, registry)", avro),
        ("replay, JSON bytes from a plain producer", json),
        ("replay, send_many JSON (typed columns)", typed),
        ("reference: fastavro schemaless_reader + DataFrame.from_records", by_hand),
    ):
        print(f"| {label} | {seconds[0]:.3f} | {seconds[1]:.3f} | {n / seconds[0]:,.0f} | "
              f"{seconds[0] / by_hand[0]:.2f}x, {seconds[1] / by_hand[1]:.2f}x |")  # fmt: skip
    print(f"\nAvro replay / JSON-bytes replay: {avro[0] / json[0]:.2f}x wall, {avro[1] / json[1]:.2f}x CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
