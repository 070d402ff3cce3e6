"""Appends that meet each other on one partition: a transactional append against retention
and topic deletion (which take the broker's lock before a log's), and wire and embedded
producers of one in-process ``Lab.serve`` appending to the same log."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import Producer as KafkaProducer
from helpers import wait_until

import streamlab
from streamlab.broker.core import Broker
from streamlab.errors import StorageError, UnknownTopicError

TIMEOUT = 10.0


def broker_of(lab: streamlab.Lab) -> Broker:
    broker = lab.backend.broker  # type: ignore[attr-defined]
    assert isinstance(broker, Broker)
    return broker


def held_elsewhere(lock: Any) -> bool:
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True


@pytest.fixture
def gated_append(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., threading.Event]]:
    """Make one partition log's first append stop, holding the log's lock, until ``until()``
    is true, then store the batch or fail as a full disk does (``fail=True``)."""
    entered = threading.Event()

    def gate(log: Any, until: Callable[[], bool], *, fail: bool) -> threading.Event:
        original = log.append

        def append(batch: pa.RecordBatch, *, sync: bool, **options: Any) -> int:
            if entered.is_set():
                return int(original(batch, sync=sync, **options))  # only the first append is stopped
            with log.append_lock:
                entered.set()
                wait_until(until, TIMEOUT, "the other thread to get there", interval=0.005)
                if fail:
                    raise StorageError("No space left on device (injected)")
                return int(original(batch, sync=sync, **options))

        monkeypatch.setattr(log, "append", append)
        return entered

    yield gate


def run_in_thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)  # daemon: a deadlock must not hang pytest's exit
    thread.start()
    return thread, errors


def test_a_failed_transactional_append_does_not_deadlock_with_retention(
    lab: streamlab.Lab, gated_append: Callable[..., threading.Event]
) -> None:
    lab.create_topic("t", config={"retention.ms": 1000})
    broker = broker_of(lab)
    producer = lab.producer(transactional_id="txn")
    try:
        producer.begin_transaction()
        log = broker.log("t", 0)
        # The append fails (a full disk) once retention holds the broker's lock and waits for
        # this log's: before the fix, the failed append asked for the broker's lock to check
        # whether the topic was deleted, while holding the log's.
        entered = gated_append(log, lambda: held_elsewhere(broker.lock), fail=True)
        sender, send_errors = run_in_thread(lambda: producer.send("t", "lost").result(TIMEOUT))
        assert entered.wait(TIMEOUT)
        cleaner, clean_errors = run_in_thread(lambda: lab.apply_retention())
        sender.join(TIMEOUT)
        cleaner.join(TIMEOUT)
        assert not sender.is_alive() and not cleaner.is_alive(), "deadlock: append and retention wait on each other"
        assert clean_errors == []
        assert len(send_errors) == 1 and isinstance(send_errors[0], StorageError)
    finally:
        producer.close()


def test_a_transactional_append_racing_a_topic_deletion_does_not_deadlock(
    lab: streamlab.Lab, gated_append: Callable[..., threading.Event]
) -> None:
    lab.create_topic("t")
    broker = broker_of(lab)
    producer = lab.producer(transactional_id="txn")
    try:
        producer.begin_transaction()
        # The append is stored after delete_topic took the topic out of the table and holds
        # the broker's lock waiting to close this log.
        entered = gated_append(broker.log("t", 0), lambda: "t" not in broker.topics, fail=False)
        sender, send_errors = run_in_thread(lambda: producer.send("t", "late").result(TIMEOUT))
        assert entered.wait(TIMEOUT)
        deleter, delete_errors = run_in_thread(lambda: lab.delete_topic("t"))
        sender.join(TIMEOUT)
        deleter.join(TIMEOUT)
        assert not sender.is_alive() and not deleter.is_alive(), "deadlock: append and delete wait on each other"
        assert delete_errors == []
        assert len(send_errors) == 1 and isinstance(send_errors[0], UnknownTopicError)
        assert "t" not in lab.topics()["name"].tolist()
    finally:
        producer.close()


@pytest.mark.slow
def test_wire_and_embedded_producers_on_one_partition_get_unique_dense_offsets(lab: streamlab.Lab) -> None:
    """A wire transactional producer and embedded producers append to one log at once: each
    record gets its own offset, and the aborted transaction hides exactly its own records
    (the offsets the server noted for it are the ones its batches were stored at)."""
    lab.create_topic("t")
    bootstrap = lab.serve()
    wire = KafkaProducer({"bootstrap.servers": bootstrap, "transactional.id": "wire", "linger.ms": 0,
                          "batch.num.messages": 1})  # fmt: skip
    embedded = lab.producer()
    count = 150
    wire_offsets: list[int] = []
    embedded_offsets: list[int] = []

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None, err
        wire_offsets.append(msg.offset())

    def send_embedded() -> None:
        for i in range(count):
            embedded_offsets.append(embedded.send("t", f"embedded-{i}", partition=0).result(TIMEOUT).offset)

    try:
        wire.init_transactions(TIMEOUT)
        wire.begin_transaction()
        sender, errors = run_in_thread(send_embedded)
        for i in range(count):
            wire.produce("t", f"wire-{i}".encode(), partition=0, on_delivery=on_delivery)
            wire.flush(TIMEOUT)
        sender.join(TIMEOUT * 3)
        assert not sender.is_alive() and errors == []
        wire.abort_transaction(TIMEOUT)
    finally:
        embedded.close()
        wire.flush(1)

    everything = lab.replay("t", isolation_level="read_uncommitted")
    assert len(set(wire_offsets)) == len(wire_offsets) == count
    assert len(set(embedded_offsets)) == count
    assert not set(wire_offsets) & set(embedded_offsets)
    stored = sorted(everything["offset"].tolist())
    assert stored == sorted(wire_offsets + embedded_offsets)  # the abort marker is no row
    end = int(lab.offsets("t")["high_watermark"].iloc[0])
    assert sorted([*stored, end - 1]) == list(range(end))  # dense: records, then the marker
    committed = lab.replay("t")  # read_committed: the aborted wire records are gone, no others
    seen = [v.decode() if isinstance(v, bytes) else v for v in committed["value"]]
    assert sorted(seen) == sorted(f"embedded-{i}" for i in range(count))
