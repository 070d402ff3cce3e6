"""Share groups (KIP-932): the same behaviour on the embedded broker, on `streamlab serve`
and on librdkafka's mock cluster (a share-group implementation nobody here wrote).

On ``kafka://`` the share consumer is librdkafka's own; the group settings a test passes
(``lock_ms``, ``delivery_count_limit``, ``auto_offset_reset``) become group configs on
`streamlab serve` and the mock's cluster-wide share settings on the mock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import streamlab
from streamlab import Record
from streamlab.errors import InvalidRecordStateError, ShareOperationError

LOCK_MS = 2_000


def _share(lab: streamlab.Lab, topic: str, group: str, **config: Any) -> Any:
    settings: dict[str, Any] = {"lock_ms": LOCK_MS, "auto_offset_reset": "earliest",
                                "acknowledgement_mode": "explicit", **config}  # fmt: skip
    return lab.share_consumer(topic, group=group, **settings)


def _produce(lab: streamlab.Lab, topic: str, n: int) -> None:
    with lab.producer() as p:
        for i in range(n):
            p.send(topic, value={"n": i}, key=f"key-{i % 7}")


def _drain(consumers: list[Any], want: int, *, ack: str = "accept", timeout: float = 30) -> list[tuple[int, Record]]:
    """Poll each consumer in turn, acknowledging and committing each batch, until ``want``
    acknowledgements were confirmed. Only confirmed ones count: a member whose partition
    moved away (the mock cluster moves partitions between members) may be refused, and
    the record then goes to another member, as at-least-once delivery allows."""
    got: list[tuple[int, Record]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        assert time.monotonic() < deadline, f"only {len(got)} of {want} records delivered"
        for i, c in enumerate(consumers):
            records = c.poll(timeout=0.2, max_records=7)
            c.acknowledge(records, ack)
            refused = c.commit()
            got += [(i, r) for r in records if r.topic_partition not in refused]
    return got


def test_members_share_partitions_record_by_record(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(partitions=3), make_group()
    _produce(lab, topic, 60)
    a, b = _share(lab, topic, group), _share(lab, topic, group)
    try:
        got = _drain([a, b], 60)
        # every record exactly once over the two members, and nothing is delivered again
        assert sorted(r.value["n"] for _, r in got) == list(range(60))
        for c in (a, b):
            # except that librdkafka may have fetched records for a member while it was not
            # polling: one whose lock ran out before it reached the member (and that another
            # member then had) can still be handed over, but it is no longer the member's
            # and its acknowledgement is refused
            late = c.poll(timeout=1.0)
            c.acknowledge(late, "accept")
            assert {r.topic_partition for r in late} <= set(c.commit())
    finally:
        a.close()
        b.close()
    # the log is unchanged: a classic consumer (an event-broker reader) still sees everything
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        seen: list[Record] = []
        deadline = time.monotonic() + 20
        while len(seen) < 60 and time.monotonic() < deadline:
            seen += c.poll(timeout=0.5)
        assert sorted(r.value["n"] for r in seen) == list(range(60))


def test_a_poll_returns_only_records_still_locked_to_the_consumer(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    """librdkafka hands over more records than a poll's ``max_records`` asks for; those
    wait in the consumer under locks that keep running, and once the locks ran out a poll
    must not return them (they are not the consumer's any more): the group delivers them
    again, and acknowledging what a poll returned right away succeeds."""
    topic, group = make_topic(), make_group()
    _produce(lab, topic, 5)
    with _share(lab, topic, group) as sc:
        first: list[Record] = []
        deadline = time.monotonic() + 20
        while not first and time.monotonic() < deadline:
            first = sc.poll(timeout=0.5, max_records=1)
        sc.acknowledge(first, "accept")
        assert sc.commit() == {}
        time.sleep(LOCK_MS / 1000)  # the locks on what came with the first record ran out
        rest: list[Record] = []
        deadline = time.monotonic() + 20
        while len(first) + len(rest) < 5 and time.monotonic() < deadline:
            records = sc.poll(timeout=0.5)
            sc.acknowledge(records, "accept")
            assert sc.commit() == {}, "a record poll returned was not held by the consumer"
            rest += records
        assert sorted(r.value["n"] for r in first + rest) == [0, 1, 2, 3, 4]


def test_release_redelivers_and_reject_does_not(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(), make_group()
    _produce(lab, topic, 3)
    with _share(lab, topic, group) as sc:
        first = _drain([sc], 3, ack="release")
        assert all(sc.delivery_count(r) is None for _, r in first), "acknowledged records are no longer held"
        again: list[Record] = []
        deadline = time.monotonic() + 20
        while len(again) < 3 and time.monotonic() < deadline:
            records = sc.poll(timeout=0.5)
            assert all(sc.delivery_count(r) == 2 for r in records), "second delivery"
            again += records
            sc.acknowledge(records, "reject")
        sc.commit()
        assert sorted(r.value["n"] for r in again) == [0, 1, 2]
        assert sc.poll(timeout=1.5) == [], "rejected records are archived, not delivered again"


# librdkafka's mock cluster assigns each partition to one member of a share group at a
# time, so a second member never gets a partition a live member holds; Kafka (and
# streamlab) let all members read every partition, which is what this test relies on.
@pytest.mark.parametrize("backend", ["embedded", "serve"])
def test_lock_expiry_hands_records_to_another_member(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(), make_group()
    _produce(lab, topic, 5)
    stuck, helper = _share(lab, topic, group), _share(lab, topic, group)
    try:
        held: list[Record] = []
        deadline = time.monotonic() + 20
        while len(held) < 5 and time.monotonic() < deadline:
            held += stuck.poll(timeout=0.5)  # and never acknowledged: a hung worker
        assert len(held) == 5
        assert helper.poll(timeout=0.5) == [], "locked records go to nobody else"
        time.sleep(LOCK_MS / 1000)
        got = _drain([helper], 5)
        assert sorted(r.value["n"] for _, r in got) == [0, 1, 2, 3, 4]
        assert {helper.delivery_count(r) for _, r in got} == {None}
        # the hung worker's late acknowledgement is refused: it no longer holds them
        stuck.acknowledge(held, "accept")
        errors = stuck.commit()
        assert errors and all(isinstance(e, InvalidRecordStateError) for e in errors.values())
    finally:
        stuck.close()
        helper.close()


def test_delivery_count_limit_archives(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(), make_group()
    _produce(lab, topic, 1)
    with _share(lab, topic, group, delivery_count_limit=2) as sc:
        counts = []
        deadline = time.monotonic() + 20
        while len(counts) < 2 and time.monotonic() < deadline:
            for r in sc.poll(timeout=0.5):
                counts.append(sc.delivery_count(r))
                sc.acknowledge(r, "release")
            sc.commit()
        assert counts == [1, 2]
        assert sc.poll(timeout=1.5) == [], "past the delivery count limit the record is archived"


def test_a_share_consumer_cannot_seek(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic = make_topic()
    with _share(lab, topic, make_group()) as sc:
        with pytest.raises(ShareOperationError):
            sc.seek(streamlab.TopicPartition(topic, 0), 0)
        with pytest.raises(ShareOperationError):
            sc.position(streamlab.TopicPartition(topic, 0))
