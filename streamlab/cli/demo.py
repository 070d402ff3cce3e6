"""``streamlab demo``: the clickstream scenario end to end, without a notebook.

Produce the sample clickstream into a 3-partition topic keyed by user, consume it back with
a consumer group, replay it into pandas, analyse it with pandas and SQL, and check that
every key stayed on one partition. Everything printed is deterministic except the timings.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

import streamlab
from streamlab.errors import ConfigError
from streamlab.model.types import TopicPartition

TOPIC = "clickstream"
PARTITIONS = 3
GROUP = "demo"
FUNNEL = ("page_view", "add_to_cart", "checkout", "purchase")
SQL = f"SELECT event, count(*) AS n FROM {TOPIC} GROUP BY event ORDER BY n DESC, event"
CONSUME_DEADLINE_S = 120.0


class _Timer:
    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases.append((name, time.perf_counter() - start))


def _section(title: str) -> None:
    print(f"\n== {title}")


def _table(df: pd.DataFrame) -> None:
    for line in df.to_string(index=False).splitlines():
        print(f"   {line}")


def run(data: str | None, records: int | None = None) -> int:
    """Run the scenario in ``data`` (default: a temporary directory removed afterwards)."""
    if records is not None and records < 1:
        raise ConfigError(f"--records must be at least 1, got {records}")
    if data is not None:
        return _scenario(Path(data), records, temporary=False)
    with tempfile.TemporaryDirectory(prefix="streamlab-demo-") as tmp:
        return _scenario(Path(tmp), records, temporary=True)


def _scenario(path: Path, records: int | None, *, temporary: bool) -> int:
    from streamlab.datasets import clickstream

    timer = _Timer()
    print("streamlab demo: the clickstream, end to end")
    print(f"broker:  {'a temporary directory (removed afterwards)' if temporary else path}")
    with timer.phase("load dataset"):
        events = clickstream(records)
    first, last = events["ts"].min(), events["ts"].max()
    print(
        f"dataset: {len(events):,} events by {events['user'].nunique():,} users, "
        f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
    )

    lab = streamlab.connect(path)
    try:
        with timer.phase("create topic"):
            existed = TOPIC in set(lab.topics()["name"])
            if existed:
                lab.delete_topic(TOPIC)
            # The sample is historical (January 2026): with the default 7-day retention it
            # would be deleted the next time the directory is opened.
            lab.create_topic(TOPIC, partitions=PARTITIONS, config={"retention.ms": -1})
        print(
            f"topic:   {'recreated' if existed else 'created'} {TOPIC!r} with {PARTITIONS} partitions, "
            "kept forever (retention.ms=-1: the sample is historical)"
        )

        _section("produce: send_many keyed by user, ts as the record timestamp")
        with timer.phase("produce"), lab.producer() as producer:
            placed = producer.send_many(TOPIC, events, key="user", timestamp="ts", progress=False)
        print(f"   produced {len(placed):,} records")

        _section(f"consume: group {GROUP!r} from earliest")
        per_partition: Counter[int] = Counter()
        key_partitions: dict[object, set[int]] = defaultdict(set)
        with timer.phase("consume"):
            consumer = lab.consumer(TOPIC, group=GROUP, auto_offset_reset="earliest")
            try:
                consumer.seek_to_beginning()  # the scenario always reads everything
                deadline = time.monotonic() + CONSUME_DEADLINE_S
                while sum(per_partition.values()) < len(events) and time.monotonic() < deadline:
                    for record in consumer.poll(timeout=1.0, max_records=5000):
                        per_partition[record.partition] += 1
                        key_partitions[record.key].add(record.partition)
                consumer.commit()
                tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
                committed = consumer.committed(tps)
            finally:
                consumer.close()
        consumed = sum(per_partition.values())
        counts = pd.DataFrame(
            {
                "partition": range(PARTITIONS),
                "records": [per_partition[p] for p in range(PARTITIONS)],
                "committed_offset": [committed[tp] for tp in tps],
            }
        )
        _table(counts)
        print(f"   consumed {consumed:,} of {len(events):,} records")

        _section("replay into pandas")
        with timer.phase("replay"):
            df = lab.replay(TOPIC)
        print(f"   {len(df):,} rows x {len(df.columns)} columns: {', '.join(map(str, df.columns))}")

        with timer.phase("analyse (pandas)"):
            _analyse(df)

        _section(f"SQL: {SQL}")
        with timer.phase("sql"):
            result = lab.sql(SQL)
        _table(result)

        _section("check: every key stayed on one partition")
        with timer.phase("check"):
            moved = sorted(str(k) for k, ps in key_partitions.items() if len(ps) > 1)
            replay_spread = df.groupby("key")["partition"].nunique() if len(df) else pd.Series(dtype=int)
            ok = not moved and bool((replay_spread <= 1).all()) and consumed == len(events) == len(df)
        if ok:
            print(
                f"   OK: {len(key_partitions):,} keys, each on exactly one partition; "
                f"{consumed:,} records produced, consumed and replayed"
            )
        else:
            print(
                f"   FAILED: keys on several partitions: {moved[:10]}; produced {len(events):,}, "
                f"consumed {consumed:,}, replayed {len(df):,}"
            )
    finally:
        lab.close()

    _section("elapsed time per phase")
    for name, seconds in timer.phases:
        print(f"   {name:<18} {seconds:8.3f} s")
    print(f"   {'total':<18} {sum(s for _, s in timer.phases):8.3f} s")
    return 0 if ok else 1


def _analyse(df: pd.DataFrame) -> None:
    _section("top 5 users by events")
    users = df["key"].value_counts().rename_axis("user").reset_index(name="events")
    _table(users.sort_values(["events", "user"], ascending=[False, True]).head(5))

    _section("revenue per country (purchases, top 5)")
    purchases = df[df["event"] == "purchase"]
    revenue = (
        purchases.groupby("country")
        .agg(purchases=("amount", "size"), revenue=("amount", "sum"))
        .reset_index()
        .sort_values(["revenue", "country"], ascending=[False, True])
        .head(5)
    )
    revenue["revenue"] = revenue["revenue"].map("{:,.2f}".format)
    _table(revenue)

    _section("purchase funnel")
    steps = []
    for step in FUNNEL:
        rows = df[df["event"] == step]
        steps.append({"step": step, "events": len(rows), "sessions": rows["session"].nunique()})
    funnel = pd.DataFrame(steps)
    base = funnel["sessions"].iloc[0] or 1
    funnel["of_sessions"] = (funnel["sessions"] / base).map("{:.1%}".format)
    _table(funnel)
