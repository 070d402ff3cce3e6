"""Consumer groups: commit and resume, sharing partitions, lag: the same on every backend."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import streamlab
from streamlab import Consumer, TopicPartition
from streamlab.errors import UnknownGroupWarning


def _poll_until(consumers: list[Consumer], done: Callable[[], bool], *, timeout: float = 20) -> None:
    """Poll every consumer in turn until ``done()`` (group membership moves during poll)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "consumers did not get there in time"
        for c in consumers:
            c.poll(timeout=0.05, max_records=100)


def test_group_commit_and_resume(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(), make_group()
    tp = TopicPartition(topic, 0)
    with lab.producer() as p:
        for i in range(20):
            p.send(topic, value=i)
    with lab.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False) as c:
        got = c.poll(timeout=10, max_records=8)
        assert [r.value for r in got] == list(range(8))
        c.commit()
        assert c.committed([tp]) == {tp: 8}
        c.commit({tp: 5})
        assert c.committed([tp]) == {tp: 5}
    with lab.consumer([topic], group=group, auto_offset_reset="earliest") as c:
        assert c.poll(timeout=10, max_records=1)[0].value == 5


def test_auto_commit_on_close(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(), make_group()
    with lab.producer() as p:
        for i in range(5):
            p.send(topic, value=i)
    with lab.consumer([topic], group=group, auto_offset_reset="earliest") as c:
        assert len(c.poll(timeout=10)) == 5
    with lab.consumer([topic], group=group, auto_offset_reset="earliest") as c:
        assert c.poll(timeout=0.5) == []
        assert c.committed([TopicPartition(topic, 0)]) == {TopicPartition(topic, 0): 5}


def test_two_consumers_of_a_group_share_the_partitions(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(partitions=4), make_group()
    with lab.producer() as p:
        for i in range(200):
            p.send(topic, value=i, key=f"k{i}")
    everything = {TopicPartition(topic, p) for p in range(4)}
    assigned: list[list[TopicPartition]] = [[], []]
    consumers = [
        lab.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False,
                     assignor="range", on_assign=assigned[i].extend, client_id=f"member-{i}")
        for i in range(2)
    ]  # fmt: skip
    try:

        def shared() -> bool:
            a, b = consumers[0].assignment(), consumers[1].assignment()
            return bool(a) and bool(b) and not a & b and a | b == everything

        _poll_until(consumers, shared)
        assert sorted(len(c.assignment()) for c in consumers) == [2, 2]
        for c in consumers:
            c.seek_to_beginning()  # what was read while the group formed is read again
        by_consumer: list[list[streamlab.Record]] = [[], []]
        deadline = time.monotonic() + 20
        while sum(len(r) for r in by_consumer) < 200 and time.monotonic() < deadline:
            for i, c in enumerate(consumers):
                by_consumer[i].extend(c.poll(timeout=0.05, max_records=100))
        assert sorted(r.value for rs in by_consumer for r in rs) == list(range(200))
        for c, records in zip(consumers, by_consumer, strict=True):
            assert {r.topic_partition for r in records} <= c.assignment()
        assert set(assigned[0]) | set(assigned[1]) >= everything
    finally:
        for c in consumers:
            c.close()


def test_lag_in_records_and_time(
    lab: streamlab.Lab, backend: str, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(partitions=2), make_group()
    with lab.producer() as p:
        for i in range(10):
            p.send(topic, value=i, partition=0, timestamp=1_700_000_000_000 + i * 1000)
    with lab.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False) as c:
        assert len(c.poll(timeout=10, max_records=4)) == 4
        c.commit({TopicPartition(topic, 0): 4})
    lag = lab.lag(group)
    assert list(lag.columns) == ["topic", "partition", "committed", "end_offset", "lag", "time_lag"]
    assert lag[["topic", "partition", "committed", "end_offset", "lag"]].values.tolist() == [[topic, 0, 4, 10, 6]]
    assert lag["time_lag"].iloc[0].total_seconds() == 5
    if backend == "kafka-mock":  # no ListGroups there: nothing to say which groups exist
        assert lab.lag(f"{group}-never-used").empty
    else:
        with pytest.warns(UnknownGroupWarning, match=f"there is no group '{group}-never-used'"):
            assert lab.lag(f"{group}-never-used").empty


def test_reset_offsets_preview(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(), make_group()
    tp = TopicPartition(topic, 0)
    with lab.producer() as p:
        for i in range(10):
            p.send(topic, value=i, timestamp=1_700_000_000_000 + i * 1000)
    with lab.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False) as c:
        c.poll(timeout=10, max_records=4)
        c.commit({tp: 4})
    columns = ["current", "new", "replayed", "skipped"]
    assert lab.reset_offsets(group, to="earliest")[columns].values.tolist() == [[4, 0, 4, 0]]
    assert lab.reset_offsets(group, to="latest")[columns].values.tolist() == [[4, 10, 0, 6]]
    assert lab.reset_offsets(group, to="2023-11-14T22:13:27Z")[columns].values.tolist() == [[4, 7, 0, 3]]
    assert lab.reset_offsets(group, to={tp: 2})[columns].values.tolist() == [[4, 2, 2, 0]]
    assert lab.lag(group)["committed"].tolist() == [4]  # a preview changes nothing


def test_cooperative_rebalancing_revokes_only_what_moves(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(partitions=6), make_group()
    revoked: list[TopicPartition] = []
    first = lab.consumer([topic], group=group, assignor="cooperative-sticky", on_revoke=revoked.extend)
    second = None
    try:
        _poll_until([first], lambda: len(first.assignment()) == 6)
        second = lab.consumer([topic], group=group, assignor="cooperative-sticky")
        both = [first, second]
        _poll_until(both, lambda: sorted(len(c.assignment()) for c in both) == [3, 3])
        assert len(revoked) == 3 and not set(revoked) & first.assignment()
        assert first.assignment() | second.assignment() == {TopicPartition(topic, p) for p in range(6)}
    finally:
        first.close()
        if second is not None:
            second.close()
