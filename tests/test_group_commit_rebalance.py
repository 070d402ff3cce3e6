"""A commit while the group rebalances: RebalanceInProgressError, as Kafka's client raises it."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import streamlab
from streamlab.errors import IllegalGenerationError, RebalanceInProgressError


def test_commits_during_a_cooperative_rebalance_say_rebalance_in_progress(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=6)
    with lab.producer() as p:
        for i in range(600):
            p.send(topic, value=i, partition=i % 6)
    consumers = [
        lab.consumer(
            [topic],
            group="joiners",
            assignor="cooperative-sticky",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            client_id=f"c{i}",
        )
        for i in range(3)  # joining at once
    ]
    outcomes: collections.Counter[str] = collections.Counter()
    seen = 0
    try:
        deadline = time.monotonic() + 20
        while seen < 600 and time.monotonic() < deadline:
            for c in consumers:
                seen += len(c.poll(timeout=0.01, max_records=10))
                try:
                    c.commit()  # right after the poll, as applications do
                    outcomes["ok"] += 1
                except RebalanceInProgressError:
                    outcomes["rebalancing"] += 1  # poll again: the next commit lands
                except IllegalGenerationError:
                    outcomes["illegal generation"] += 1
        assert seen == 600
        assert outcomes["illegal generation"] == 0, outcomes
        assert outcomes["rebalancing"] >= 1, outcomes  # the three joins overlap
        for c in consumers:
            c.commit()
        partitions = [streamlab.TopicPartition(topic, p) for p in range(6)]
        assert set(consumers[0].committed(partitions).values()) == {100}  # every record's commit landed
    finally:
        for c in consumers:
            c.close()
