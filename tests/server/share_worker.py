"""One share-group worker in its own process, for the server's share-group tests.

``python share_worker.py BOOTSTRAP GROUP TOPIC MODE DLQ`` connects with
``streamlab.connect("kafka://BOOTSTRAP")`` (librdkafka's share consumer underneath) and:

- MODE ``work``: accepts each record after WORK_S of "work"; a record whose value has
  ``"poison": true`` is released instead (it can never be processed), so it goes round
  until the delivery count limit dead-letters it to DLQ;
- MODE ``hang``: takes one batch and never acknowledges it (a stuck worker, to be
  killed with kill -9).

It writes one JSON object per line to stdout:
``{"event": "held", "records": [[partition, offset, n, delivery_count], ...]}`` per poll, and
``{"event": "accepted", "records": [[partition, offset, n], ...]}`` once the broker confirmed
them (commit() returned no error for their partition), and ``"unconfirmed"`` for records
acknowledged whose commit answered an error. SIGTERM closes the consumer.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

import streamlab

LOCK_MS = 3000
DELIVERY_LIMIT = 3
WORK_S = 0.002
running = True


def emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def stop(*_: object) -> None:
    global running
    running = False


def main(bootstrap: str, group: str, topic: str, mode: str, dlq: str) -> None:
    signal.signal(signal.SIGTERM, stop)
    lab = streamlab.connect(f"kafka://{bootstrap}")
    sc = lab.share_consumer(topic, group=group, lock_ms=LOCK_MS, delivery_count_limit=DELIVERY_LIMIT,
                            dead_letter_topic=dlq, auto_offset_reset="earliest", acknowledgement_mode="explicit",
                            max_poll_records=10)  # fmt: skip
    emit(event="joined")
    while running:
        records = sc.poll(timeout=0.2)
        if not records:
            continue
        emit(event="held", records=[[r.partition, r.offset, r.value["n"], sc.delivery_count(r)] for r in records])
        if mode == "hang":
            while True:
                time.sleep(1)
        done = []
        for r in records:
            if r.value.get("poison"):
                sc.acknowledge(r, "release")
            else:
                time.sleep(WORK_S)
                sc.acknowledge(r, "accept")
                done.append(r)
        try:
            errors = sc.commit()
        except streamlab.StreamlabError as exc:  # the broker is down: nothing confirmed
            emit(event="commit-failed", error=str(exc))
            continue
        confirmed = [r for r in done if r.topic_partition not in errors]
        emit(event="accepted", records=[[r.partition, r.offset, r.value["n"]] for r in confirmed])
        if len(confirmed) < len(done):  # acknowledged, but the broker's answer was an error (it restarted):
            # the client sends them again with its next request, so they may well be applied
            emit(event="unconfirmed", records=[[r.partition, r.offset, r.value["n"]] for r in done
                                               if r.topic_partition in errors])  # fmt: skip
    sc.close()
    lab.close()


if __name__ == "__main__":
    main(*sys.argv[1:6])
