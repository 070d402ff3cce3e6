"""A consume-transform-produce application, exactly once, run as its own process by
test_conformance_transactions.py (so the test can kill -9 it mid-transaction).

    python eos_app.py TARGET SOURCE SINK GROUP TRANSACTIONAL_ID EXPECTED [--die-after N]

Reads SOURCE (read_committed, positions from GROUP's committed offsets), writes one record
per input to SINK and commits GROUP's offsets in the same transaction, until GROUP has
consumed EXPECTED records. With ``--die-after N`` it commits N transactions, then begins
one more, sends its records (stored, not committed), prints ``MID`` and waits to be killed.
"""

from __future__ import annotations

import argparse
import sys
import time

import streamlab
from streamlab import TopicPartition

BATCH = 4


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("target", "source", "sink", "group", "transactional_id"):
        parser.add_argument(name)
    parser.add_argument("expected", type=int)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--die-after", type=int, default=None)
    args = parser.parse_args()
    lab = streamlab.connect(args.target)
    # First, as Kafka's exactly-once apps do: fences the killed instance and aborts its
    # transaction, whose offsets would otherwise keep the group's offsets unstable.
    producer = lab.producer(transactional_id=args.transactional_id)
    producer.init_transactions(timeout=30)
    consumer = lab.consumer(
        group=args.group, auto_offset_reset="earliest", enable_auto_commit=False, isolation_level="read_committed"
    )
    # Assigned, not subscribed: a restarted app need not wait for the killed member's session.
    tps = [TopicPartition(args.source, p) for p in range(args.partitions)]
    consumer.assign(tps)
    committed = 0
    deadline = time.monotonic() + 60
    while sum(consumer.position(tp) for tp in tps) < args.expected:
        assert time.monotonic() < deadline, "the app did not finish in 60 s"
        records = consumer.poll(timeout=1.0, max_records=BATCH)
        if not records:
            continue
        producer.begin_transaction()
        for r in records:
            producer.send(args.sink, {"i": r.value["i"], "double": 2 * r.value["i"]}, key=r.key)
        positions = {tp: consumer.position(tp) for tp in tps}
        producer.send_offsets_to_transaction(positions, consumer, timeout=30)
        if args.die_after is not None and committed == args.die_after:
            producer.flush(timeout=30)  # the records are stored: only the commit is missing
            print("MID", flush=True)
            time.sleep(120)
            sys.exit(1)  # never reached: the test kills the process
        producer.commit_transaction(timeout=30)
        committed += 1
    producer.close()
    consumer.close()
    lab.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
