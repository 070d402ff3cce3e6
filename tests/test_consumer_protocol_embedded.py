"""``lab.consumer(..., group_protocol="consumer")``: embedded members of a KIP-848 group,
alone and beside a confluent-kafka ``group.protocol=consumer`` member of the same group
through ``lab.serve()``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from confluent_kafka import Consumer as KafkaConsumer
from helpers import wait_until

import streamlab
from streamlab import TopicPartition
from streamlab.broker.core import Broker
from streamlab.errors import ConfigError, GroupTypeError, InconsistentProtocolError

TIMEOUT = 30.0


def fast_heartbeats(lab: streamlab.Lab) -> Broker:
    """The broker's group.consumer.heartbeat.interval.ms down to 300 ms (wire members
    reconcile at each heartbeat), set before the first consumer-protocol member."""
    broker = lab.backend.broker  # type: ignore[attr-defined]
    assert isinstance(broker, Broker)
    broker.settings = dataclasses.replace(broker.settings, group_consumer_heartbeat_interval_ms=300)
    return broker


@pytest.mark.integration  # lab.serve() and a confluent-kafka consumer
def test_an_embedded_and_a_wire_member_share_one_group(lab: streamlab.Lab) -> None:
    fast_heartbeats(lab)
    lab.create_topic("t", partitions=4)
    with lab.producer() as p:
        for i in range(80):
            p.send("t", i, partition=i % 4)
    everything = {TopicPartition("t", p) for p in range(4)}
    embedded_read: dict[TopicPartition, list[int]] = {}
    revoked: list[TopicPartition] = []
    embedded = lab.consumer("t", group="g", group_protocol="consumer", auto_offset_reset="earliest",
                            enable_auto_commit=False, max_poll_records=3, on_revoke=revoked.extend)  # fmt: skip
    wire = None
    try:

        def embedded_poll() -> None:
            for r in embedded.poll(timeout=0.05):
                embedded_read.setdefault(r.topic_partition, []).append(r.offset)
            embedded.commit()

        wait_until(lambda: embedded.assignment() == everything, TIMEOUT, "the embedded member to get every partition",
                   step=embedded_poll)  # fmt: skip
        embedded_poll()
        wire = KafkaConsumer({"bootstrap.servers": lab.serve(), "group.id": "g", "group.protocol": "consumer",
                              "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
        wire.subscribe(["t"])
        wire_read: dict[TopicPartition, list[int]] = {}

        def both_poll() -> None:
            embedded_poll()
            msg = wire.poll(0.05)
            if msg is not None and msg.error() is None:
                wire_read.setdefault(TopicPartition(msg.topic(), msg.partition()), []).append(msg.offset())
                wire.commit(message=msg, asynchronous=False)

        def shared() -> bool:
            wire_held = {TopicPartition(tp.topic, tp.partition) for tp in wire.assignment()}
            return len(embedded.assignment()) == len(wire_held) == 2 and embedded.assignment() | wire_held == everything

        wait_until(shared, TIMEOUT, "the embedded and the wire member to share the partitions", step=both_poll)
        assert sorted(revoked) == sorted(everything - embedded.assignment())  # revoked before it moved
        wait_until(lambda: sum(map(len, embedded_read.values())) + sum(map(len, wire_read.values())) >= 80, TIMEOUT,
                   "every record to be read", step=both_poll)  # fmt: skip
        for tp in everything:  # each offset read once: the wire member began at the embedded one's commit
            offsets = sorted(embedded_read.get(tp, []) + wire_read.get(tp, []))
            assert offsets == list(range(20)), tp
        groups = lab.groups().set_index("group")
        assert groups.loc["g", "type"] == "consumer" and groups.loc["g", "members"] == 2
        assert groups.loc["g", "generation"] == 2  # the group epoch: two joins
        described = lab.describe_group("g")
        assert set(described["member"]) == {embedded.member_id, wire.memberid()}
        assert described["member_epoch"].tolist() == [2] * 4  # both members reconciled to the group epoch
        history = lab.rebalances("g")
        moved = history[history["change"] == "revoked"]
        assert set(moved["member"]) == {embedded.member_id} and len(moved) == 2
    finally:
        embedded.close()
        if wire is not None:
            wire.close()


def test_an_embedded_member_is_fenced_and_rejoins_after_its_session(tmp_path: Path) -> None:
    clock = streamlab.ManualClock()  # the session and max_poll_interval_ms count on it: stepped, not slept
    with streamlab.connect(tmp_path, clock=clock) as lab:
        broker = fast_heartbeats(lab)
        broker.settings = dataclasses.replace(broker.settings, group_consumer_session_timeout_ms=1000)
        lab.create_topic("t", partitions=2)
        lost: list[TopicPartition] = []
        c = lab.consumer("t", group="g", group_protocol="consumer", assignor="range", on_lost=lost.extend,
                         max_poll_interval_ms=200)  # fmt: skip
        try:
            wait_until(lambda: len(c.assignment()) == 2, TIMEOUT, "the assignment", step=lambda: c.poll(timeout=0.05))
            epoch = c.generation
            clock.advance(2.5)  # no poll for max_poll_interval_ms: no heartbeats, the session runs out
            c.poll(timeout=0.05)
            assert sorted(lost) == [TopicPartition("t", 0), TopicPartition("t", 1)]
            assert len(c.assignment()) == 2 and c.generation > epoch  # back, at a later epoch
        finally:
            c.close()


def test_group_protocol_is_checked_and_one_group_has_one_protocol(lab: streamlab.Lab) -> None:
    lab.create_topic("t")
    with pytest.raises(ConfigError, match="group_protocol"):
        lab.consumer("t", group="g", group_protocol="kip848")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="uniform"):
        lab.consumer("t", group="g", group_protocol="consumer", assignor="cooperative-sticky")
    with lab.consumer("t", group="new", group_protocol="consumer"), pytest.raises(InconsistentProtocolError):
        lab.consumer("t", group="new")  # classic
    with lab.consumer("t", group="old"), pytest.raises(GroupTypeError):
        lab.consumer("t", group="old", group_protocol="consumer")


def test_the_group_epoch_goes_on_after_the_directory_reopens(tmp_path: Path) -> None:
    lab = streamlab.connect(tmp_path)
    lab.create_topic("t", partitions=2)
    c = lab.consumer("t", group="g", group_protocol="consumer")
    wait_until(lambda: len(c.assignment()) == 2, TIMEOUT, "the assignment", step=lambda: c.poll(timeout=0.05))
    c._die()  # type: ignore[attr-defined]  # the process "dies" with its member in the group
    lab.close()
    with streamlab.connect(tmp_path) as lab:
        # The member of the closed broker cannot come back: it is out at once, the epoch moved on.
        row = lab.groups().set_index("group").loc["g"]
        assert (row["type"], row["members"], row["generation"]) == ("consumer", 0, 2)
        with lab.consumer("t", group="g", group_protocol="consumer") as again:
            wait_until(lambda: len(again.assignment()) == 2, TIMEOUT, "the assignment again",
                       step=lambda: again.poll(timeout=0.05))  # fmt: skip
            assert again.generation == 3  # a later epoch than any before the restart


def test_the_rebalance_timeline_shows_a_consumer_protocol_group_by_its_epochs(lab: streamlab.Lab) -> None:
    from streamlab.notebook.group_state import RebalanceTimelineState

    lab.create_topic("t", partitions=2)
    members = [lab.consumer("t", group="g", group_protocol="consumer", client_id=f"m{i}") for i in range(2)]
    try:
        wait_until(lambda: all(len(m.assignment()) == 1 for m in members), TIMEOUT, "the members to share",
                   step=lambda: [m.poll(timeout=0.05) for m in members])  # fmt: skip
        state = RebalanceTimelineState(lab, "g")
        state.refresh()
        assert (state.generation_name, state.generation, state.member_count) == ("group epoch", 2, 2)
        assert sum(len(tps) for tps in state.members.values()) == 2
        assert [g.generation for g in state.generations] == [1, 2]  # member epochs of the history
    finally:
        for m in members:
            m.close()
