"""Consumer groups of real Kafka clients against `streamlab serve`: kcat, kafka-python and
confluent-kafka, with members in separate processes, a member killed with kill -9,
commit and resume, and cooperative-sticky rebalancing; afterwards the data directory's
rebalance history tells what happened and why.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from harness import ServerProcess
from helpers import wait_until

import streamlab

KCAT = "/usr/bin/kcat"
WORKER = Path(__file__).with_name("group_worker.py")
SESSION_MS = 6000


def produce(server: ServerProcess, topic: str, values: list[str], partitions: int) -> None:
    producer = Producer({"bootstrap.servers": server.bootstrap, "acks": "all", "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), key=f"k{i}".encode(), partition=i % partitions)
    assert producer.flush(15) == 0


class Lines:
    """Collects a process's output lines from a reader thread."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def snapshot(self) -> list[str]:
        return list(self.lines)

    def close(self) -> None:
        """After the process ended: read what is left, and close the pipe."""
        self._thread.join(10)
        self._stream.close()


class Worker:
    """One group member in its own process (tests/server/group_worker.py)."""

    def __init__(self, client: str, server: ServerProcess, group: str, topic: str, assignor: str = "range") -> None:
        self.client = client
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), client, server.bootstrap, group, topic, assignor],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.out = Lines(self.process.stdout)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for line in self.out.snapshot() if (e := json.loads(line))["event"] == kind]

    def assignment(self) -> set[int] | None:
        assigned = self.events("assigned")
        return set(assigned[-1]["partitions"]) if assigned else None

    def records(self) -> list[tuple[int, int, str]]:
        return [(e["partition"], e["offset"], e["value"]) for e in self.events("record")]

    def committed(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for e in self.events("committed"):
            out.update({int(p): o for p, o in e["offsets"].items()})
        return out

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM: the member closes its consumer, leaving the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.out.close()


def balanced(assignments: list[set[int] | None], partitions: int) -> bool:
    """Every member holds something, nobody holds a partition twice, all are held."""
    if any(not a for a in assignments):
        return False
    held = [p for a in assignments for p in a or ()]
    return len(held) == len(set(held)) == partitions


@pytest.mark.parametrize("clients", [("kafka-python",) * 3, ("confluent", "kafka-python", "confluent")])
def test_member_killed_with_kill_9_hands_its_partitions_over(
    server: ServerProcess, create_topic: Callable[..., str], clients: tuple[str, ...]
) -> None:
    topic, group = create_topic(partitions=6), "workers"
    workers = [Worker(client, server, group, topic) for client in clients]
    try:
        wait_until(lambda: balanced([w.assignment() for w in workers], 6), 30, "three members sharing 6 partitions")
        first = [f"a{i}" for i in range(300)]
        produce(server, topic, first, 6)
        seen = lambda: {v for w in workers for _, _, v in w.records()}  # noqa: E731
        wait_until(lambda: seen() >= set(first), 30, "the first records to be consumed")
        victim, survivors = workers[0], workers[1:]
        moved = victim.assignment() or set()
        wait_until(lambda: all(victim.committed().get(p) == 50 for p in moved), 10, "the victim's last commit")
        victim.kill()
        second = [f"b{i}" for i in range(300)]
        produce(server, topic, second, 6)
        took = wait_until(lambda: seen() >= set(first + second), 40, "the victim's partitions to be consumed again")
        assert took >= SESSION_MS / 1000 - 1.5  # the coordinator waited for the session to expire
        assert balanced([w.assignment() for w in survivors], 6)
        records = [r for w in workers for r in w.records()]
        for p in range(6):  # no record skipped: every offset of every partition was read
            assert {o for q, o, _ in records if q == p} == set(range(100))
        for p in moved:  # at least once from the last commit: the new owner resumed right there
            taker = next(w for w in survivors if p in (w.assignment() or ()))
            assert min(o for q, o, _ in taker.records() if q == p) == victim.committed()[p] == 50
    finally:
        for w in workers:
            w.stop()
    server.stop()
    with streamlab.connect(server.data_dir) as lab:
        history = lab.rebalances(group)
        lag = lab.lag(group)
    assert history["reason"].str.contains("timed out (session.timeout.ms)", regex=False).any()
    assert (
        history["reason"].str.contains("joined", regex=False).any()
        and history["reason"].str.contains("left the group", regex=False).any()
    )
    assert set(history["change"]) >= {"assigned", "revoked"}
    assert lag["lag"].tolist() == [0] * 6 and lag["committed"].tolist() == [100] * 6


def _kcat_assignment(stderr: list[str]) -> set[int] | None:
    """The partitions kcat holds, from its "% Group ... rebalanced" lines."""
    held: set[int] | None = None
    for line in stderr:
        found = re.search(r"rebalanced \(memberid [^)]*\): (assigned|revoked): (.*)", line)
        if found:
            partitions = {int(p) for p in re.findall(r"\[(\d+)\]", found.group(2))}
            held = partitions if found.group(1) == "assigned" else set()
    return held


def test_kcat_balanced_consumers_share_the_partitions(server: ServerProcess, create_topic: Callable[..., str]) -> None:
    topic = create_topic(partitions=4)
    args = [KCAT, "-b", server.bootstrap, "-G", "kcat-group", topic, "-u", "-f", "%p %o %s\n",
            "-X", "auto.offset.reset=earliest", "-X", f"session.timeout.ms={SESSION_MS}",
            "-X", "heartbeat.interval.ms=500"]  # fmt: skip
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [(Lines(p.stdout), Lines(p.stderr)) for p in procs]
    try:
        held = lambda: [_kcat_assignment(err.snapshot()) for _, err in outs]  # noqa: E731
        wait_until(lambda: balanced(held(), 4), 30, "two kcat processes sharing 4 partitions")
        values = [f"v{i}" for i in range(200)]
        produce(server, topic, values, 4)
        read = lambda: [line.split(" ", 2) for out, _ in outs for line in out.snapshot()]  # noqa: E731
        wait_until(lambda: {v for _, _, v in read()} >= set(values), 30, "kcat to consume everything")
        for (out, _), mine in zip(outs, held(), strict=True):
            got = {int(p) for p, _, _ in (line.split(" ", 2) for line in out.snapshot())}
            assert got == mine  # each process read exactly the partitions it was given
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p, (out, err) in zip(procs, outs, strict=True):
            p.wait(15)
            out.close()
            err.close()
    server.stop()
    with streamlab.connect(server.data_dir) as lab:
        history = lab.rebalances("kcat-group")
    last = history[history["generation"] == history["generation"].max()]
    assert set(last["change"]) == {"revoked"} and last["reason"].str.contains("left the group", regex=False).all()


def test_commit_with_confluent_and_resume_with_kafka_python(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic, group = create_shared_topic(partitions=2), "resume"
    values = [f"r{i}" for i in range(100)]
    produce(shared_server, topic, values, 2)
    config = {"bootstrap.servers": shared_server.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": SESSION_MS}  # fmt: skip
    first = Consumer(config)
    first.subscribe([topic])
    read: list[Any] = []
    deadline = time.monotonic() + 30
    while len(read) < 30 and time.monotonic() < deadline:
        read += [m for m in first.consume(num_messages=30 - len(read), timeout=0.5) if not m.error()]
    positions = {}
    for m in read:
        positions[m.partition()] = m.offset() + 1
    first.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)
    first.close()
    probe = Consumer(config)
    stored = probe.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)
    probe.close()
    assert {tp.partition: tp.offset for tp in stored if tp.offset >= 0} == positions
    admin = AdminClient({"bootstrap.servers": shared_server.bootstrap})
    listed = admin.list_consumer_group_offsets([_group_request(group)])[group].result(10)
    assert {tp.partition: tp.offset for tp in listed.topic_partitions if tp.offset >= 0} == positions

    second = Worker("kafka-python", shared_server, group, topic)
    try:
        rest = set(values) - {m.value().decode() for m in read}
        wait_until(lambda: {v for _, _, v in second.records()} >= rest, 30, "kafka-python to read the rest")
        for p in range(2):
            first_offset = min(o for q, o, _ in second.records() if q == p)
            assert first_offset == positions.get(p, 0)  # resumed exactly at the committed offset
    finally:
        second.stop()


def _group_request(group: str) -> Any:
    from confluent_kafka import ConsumerGroupTopicPartitions

    return ConsumerGroupTopicPartitions(group)


def test_cooperative_sticky_revokes_only_what_moves(server: ServerProcess, create_topic: Callable[..., str]) -> None:
    topic, group = create_topic(partitions=4), "coop"
    produce(server, topic, [f"c{i}" for i in range(40)], 4)
    log: dict[str, list[tuple[str, set[int]]]] = {"one": [], "two": []}

    def make(name: str) -> Consumer:
        consumer = Consumer({
            "bootstrap.servers": server.bootstrap, "group.id": group, "client.id": name,
            "partition.assignment.strategy": "cooperative-sticky", "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500,
        })  # fmt: skip
        consumer.subscribe(
            [topic],
            on_assign=lambda _c, tps: log[name].append(("assign", {tp.partition for tp in tps})),
            on_revoke=lambda _c, tps: log[name].append(("revoke", {tp.partition for tp in tps})),
        )
        return consumer

    def held(name: str) -> set[int]:
        out: set[int] = set()
        for kind, partitions in log[name]:
            out = out | partitions if kind == "assign" else out - partitions
        return out

    consumers = [make("one")]

    def polled(condition: Callable[[], bool]) -> Callable[[], bool]:
        def step() -> bool:
            for c in consumers:
                c.poll(0.05)
            return condition()

        return step

    try:
        wait_until(polled(lambda: held("one") == {0, 1, 2, 3}), 30, "one to own everything")
        consumers.append(make("two"))
        wait_until(polled(lambda: len(held("one")) == len(held("two")) == 2), 30, "the two to share the partitions")
        kept, moved = held("one"), held("two")
        revoked = [p for kind, partitions in log["one"] if kind == "revoke" for p in partitions]
        assert sorted(revoked) == sorted(moved) and kept | moved == {0, 1, 2, 3}  # only the two that moved
        admin = AdminClient({"bootstrap.servers": server.bootstrap})
        described = admin.describe_consumer_groups([group])[group].result(10)
        assert str(described.state).endswith("STABLE") and described.partition_assignor == "cooperative-sticky"
        assert sorted(len(m.assignment.topic_partitions) for m in described.members) == [2, 2]
    finally:
        for c in consumers:
            c.close()
    server.stop()
    with streamlab.connect(server.data_dir) as lab:
        history = lab.rebalances(group)
    first_generation = history[history["generation"] == history["generation"].min()]
    (first_owner,) = set(first_generation["member"])
    stayed = history[(history["member"] == first_owner) & history["partition"].isin(kept)]
    # The partitions that stayed were revoked only when the consumers closed; the others
    # moved in one cooperative round, and arrived at the new member in the next.
    assert stayed[stayed["change"] == "revoked"]["reason"].str.contains("left the group", regex=False).all()
    gone = history[(history["member"] == first_owner) & history["partition"].isin(moved)]
    (round_one,) = set(gone[gone["change"] == "revoked"]["generation"])
    arrived = history[history["partition"].isin(moved) & (history["change"] == "assigned")]
    assert set(arrived[arrived["member"] != first_owner]["generation"]) == {round_one + 1}
