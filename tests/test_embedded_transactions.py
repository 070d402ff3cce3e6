"""Transactions on the embedded broker: what the conformance suite cannot see from outside
(the last stable offset under a consumer, compaction, the in-process server sharing the
coordinator, a crash of the whole process with a transaction open)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import KafkaError
from confluent_kafka import TopicPartition as KafkaTP

import streamlab
from streamlab import TopicPartition
from streamlab.broker.transaction_registry import coordinator, current_index
from streamlab.errors import ConfigError, InvalidTxnStateError, NoGroupError, ProducerFencedError
from streamlab.model.serde import FMT_CONTROL

TIMEOUT = 10.0


def values(lab: streamlab.Lab, topic: str, isolation: str) -> list[object]:
    with lab.consumer(topic, auto_offset_reset="earliest", isolation_level=isolation) as c:
        return [r.value for r in c.poll(timeout=0.5, max_records=1000)]


def test_a_read_committed_consumer_waits_at_the_last_stable_offset(lab: streamlab.Lab) -> None:
    lab.create_topic("t")
    open_txn = lab.producer(transactional_id="slow")
    other = lab.producer(transactional_id="quick")
    with lab.producer() as plain:
        plain.send("t", "before").result(TIMEOUT)
        open_txn.begin_transaction()
        open_txn.send("t", "pending")
        open_txn.flush(TIMEOUT)
        plain.send("t", "plain, after the open transaction").result(TIMEOUT)
    other.begin_transaction()
    other.send("t", "committed, after the open transaction")
    other.commit_transaction(TIMEOUT)
    c = lab.consumer("t", auto_offset_reset="earliest", isolation_level="read_committed")
    late = lab.consumer("t", auto_offset_reset="latest", isolation_level="read_committed")
    try:
        assert [r.value for r in c.poll(timeout=0.3)] == ["before"]
        assert c.position(TopicPartition("t", 0)) == 1  # the last stable offset: "pending" is at 1
        assert late.position(TopicPartition("t", 0)) == 1  # "latest" is the last stable offset too
        open_txn.commit_transaction(TIMEOUT)
        assert [r.value for r in c.poll(timeout=TIMEOUT)] == [
            "pending", "plain, after the open transaction", "committed, after the open transaction"
        ]  # fmt: skip
        assert c.position(TopicPartition("t", 0)) == 6  # past both commit markers
    finally:
        c.close()
        late.close()
        open_txn.close()
        other.close()


def test_calls_out_of_order_raise_before_anything_is_stored(lab: streamlab.Lab) -> None:
    lab.create_topic("t")
    with pytest.raises(ConfigError):
        lab.producer(transactional_id="")
    with pytest.raises(ConfigError):
        lab.consumer("t", isolation_level="read_dirty")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        lab.replay("t", isolation_level="read_dirty")  # type: ignore[arg-type]
    with lab.producer(transactional_id="a") as p:
        with pytest.raises(InvalidTxnStateError):
            p.send("t", 1)  # no transaction begun
        with pytest.raises(InvalidTxnStateError):
            p.commit_transaction()
        p.begin_transaction()
        with pytest.raises(InvalidTxnStateError):
            p.begin_transaction()
        with pytest.raises(NoGroupError), lab.consumer("t") as c:  # a consumer without a group
            p.send_offsets_to_transaction({TopicPartition("t", 0): 0}, c)
        p.send("t", "in the transaction")
        # close() aborts what is open
    assert values(lab, "t", "read_committed") == []
    assert values(lab, "t", "read_uncommitted") == ["in the transaction"]
    assert lab.offsets("t")["high_watermark"].tolist() == [2]  # the record and the abort marker


def test_a_fenced_producer_stays_fenced(lab: streamlab.Lab) -> None:
    lab.create_topic("t")
    old = lab.producer(transactional_id="a")
    old.begin_transaction()
    old.send("t", "zombie")
    old.flush(TIMEOUT)
    with lab.producer(transactional_id="a") as new:
        new.init_transactions()
    with pytest.raises(ProducerFencedError):  # the batch is refused when the sender stores it
        old.send("t", "after the fence").result(TIMEOUT)
    with pytest.raises(ProducerFencedError):
        old.commit_transaction()
    with pytest.raises(ProducerFencedError):
        old.begin_transaction()
    old.close()  # no error: the newer producer aborted its transaction
    assert values(lab, "t", "read_committed") == []


def test_compaction_keeps_committed_records_over_aborted_and_open_ones(lab: streamlab.Lab) -> None:
    lab.create_topic("c", config={"cleanup.policy": "compact"})
    p = lab.producer(transactional_id="a")
    pending = lab.producer(transactional_id="b")
    try:
        p.begin_transaction()
        p.send("c", "v1", key="k")
        p.send("c", "x1", key="x")
        p.commit_transaction(TIMEOUT)
        p.begin_transaction()
        p.send("c", "aborted", key="k")
        p.abort_transaction(TIMEOUT)
        pending.begin_transaction()
        pending.send("c", "open", key="k")
        pending.send("c", "x2", key="x")
        pending.flush(TIMEOUT)
        lab.roll("c")
        lab.apply_retention()
        # The aborted record is gone and superseded nothing; the open one may still abort.
        assert values(lab, "c", "read_committed") == ["v1", "x1"]
        assert values(lab, "c", "read_uncommitted") == ["v1", "x1", "open", "x2"]
        pending.commit_transaction(TIMEOUT)
        lab.roll("c")
        lab.apply_retention()
        assert values(lab, "c", "read_committed") == ["open", "x2"]
        assert lab.replay("c")["value"].tolist() == ["open", "x2"]
    finally:
        p.close()
        pending.close()
    # Markers stay (they are not keyed records): two commits and an abort, at 2, 4 and 7.
    broker = lab.backend.broker  # type: ignore[attr-defined]
    rows = broker.log("c", 0).read(0, 100)
    markers = [o for o, f in zip(rows.column("offset").to_pylist(), rows.column("key_format").to_pylist(), strict=True)
               if f == FMT_CONTROL]  # fmt: skip
    assert markers == [2, 4, 7]


@pytest.mark.integration  # lab.serve() and confluent-kafka clients
def test_the_in_process_server_shares_the_embedded_coordinator(lab: streamlab.Lab) -> None:
    lab.create_topic("t")
    p = lab.producer(transactional_id="a")
    p.begin_transaction()
    p.send("t", "embedded, open")
    p.flush(TIMEOUT)
    bootstrap = lab.serve()
    assert coordinator(lab.backend.broker) is not None  # type: ignore[attr-defined]
    wire = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": "g", "isolation.level": "read_committed",
                          "enable.partition.eof": True, "auto.offset.reset": "earliest"})  # fmt: skip
    try:
        wire.assign([KafkaTP("t", 0, 0)])

        def read_to_end() -> list[bytes]:
            got: list[bytes] = []
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                msg = wire.poll(0.2)
                if msg is None:
                    continue
                if msg.error() and msg.error().code() == KafkaError._PARTITION_EOF:
                    return got
                got.append(msg.value())
            raise AssertionError(f"no end of partition: {got}")

        assert read_to_end() == []  # the wire sees the embedded transaction open
        p.commit_transaction(TIMEOUT)
        assert read_to_end() == [b"embedded, open"]
    finally:
        wire.close()
        p.close()


@pytest.mark.integration  # a subprocess killed with SIGKILL
def test_a_transaction_open_when_the_process_dies_is_aborted_on_reopen(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal, streamlab
        lab = streamlab.connect({str(tmp_path)!r})
        lab.create_topic("t")
        p = lab.producer(transactional_id="a")
        p.begin_transaction()
        p.send("t", "committed")
        p.commit_transaction()
        p.begin_transaction()
        p.send("t", "open at the crash")
        p.send_offsets_to_transaction({{streamlab.TopicPartition("t", 0): 1}}, "g")
        p.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert died.returncode == -9, died.stderr
    with streamlab.connect(tmp_path) as lab:
        assert current_index(lab.backend.broker).open == {}  # type: ignore[attr-defined]
        assert values(lab, "t", "read_committed") == ["committed"]
        assert values(lab, "t", "read_uncommitted") == ["committed", "open at the crash"]
        assert lab.replay("t")["value"].tolist() == ["committed"]
        with lab.consumer(group="g") as c:
            assert c.committed([TopicPartition("t", 0)]) == {TopicPartition("t", 0): None}
        with lab.producer(transactional_id="a") as p:  # the id carries on, one epoch later
            p.begin_transaction()
            p.send("t", "after")
            p.commit_transaction()
        assert values(lab, "t", "read_committed") == ["committed", "after"]


def test_a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced(lab: streamlab.Lab) -> None:
    lab.create_topic("t")
    with lab.producer(transactional_id="slow", transaction_timeout_ms=100) as p:
        p.begin_transaction()
        p.send("t", "too late").result(TIMEOUT)
        txns = coordinator(lab.backend.broker)  # type: ignore[attr-defined]
        assert txns is not None
        deadline = time.monotonic() + TIMEOUT  # the coordinator looks every half second
        while (found := txns.describe("slow")) is not None and found.state != "CompleteAbort":
            assert time.monotonic() < deadline, found
            time.sleep(0.05)
        with pytest.raises(ProducerFencedError):
            p.commit_transaction()
    assert values(lab, "t", "read_committed") == []
    assert values(lab, "t", "read_uncommitted") == ["too late"]
