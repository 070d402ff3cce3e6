"""Transactions through `streamlab serve`, driven by confluent-kafka (librdkafka)."""

from __future__ import annotations

import asyncio
import datetime
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from harness import ServerProcess
from kafka_wire import RawClient, kio_request, records

from streamlab.broker import Broker, topics
from streamlab.broker.producer_state import ProducerStates
from streamlab.broker.transaction_markers import read_visible, visible_filter_sql, visible_mask
from streamlab.broker.transaction_state import read_index
from streamlab.broker.transactions import TransactionCoordinator
from streamlab.errors import InvalidTxnStateError, ProducerFencedError
from streamlab.model.schema import build_batch
from streamlab.protocol.record_batch import decode_batches

TIMEOUT = 10.0
CONTROL_VALUE = struct.pack(">hi", 0, 0)  # a marker's value: version 0, coordinator epoch 0


def txn_producer(server: ServerProcess, tid: str, **extra: object) -> Producer:
    producer = Producer({"bootstrap.servers": server.bootstrap, "transactional.id": tid, "linger.ms": 5, **extra})
    producer.init_transactions(TIMEOUT)
    return producer


def consumer(server: ServerProcess, isolation: str, group: str | None = None, **extra: object) -> Consumer:
    return Consumer({
        "bootstrap.servers": server.bootstrap,
        "group.id": group or f"g-{uuid.uuid4().hex[:8]}",
        "isolation.level": isolation,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        **extra,
    })  # fmt: skip


def read_all(c: Consumer, topic: str, partitions: int = 1, timeout: float = TIMEOUT) -> list[bytes]:
    """Every value up to the end of each partition (as the isolation level sees it)."""
    c.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    values: list[bytes] = []
    eof: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(eof) < partitions:
        assert time.monotonic() < deadline, f"no end of partitions after {timeout}s: {values}"
        msg = c.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            raise KafkaException(msg.error())
        eof.discard(msg.partition())
        values.append(msg.value())
    return values


def test_commit_and_abort_seen_per_isolation_level(server: ServerProcess, create_topic: Callable[..., str]) -> None:
    topic = create_topic(2)
    producer = txn_producer(server, "tx-basic")
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, value=b"c%d" % i, partition=i % 2)
    producer.commit_transaction(TIMEOUT)
    producer.begin_transaction()
    for i in range(6):
        producer.produce(topic, value=b"a%d" % i, partition=i % 2)
    producer.flush(TIMEOUT)
    producer.abort_transaction(TIMEOUT)
    producer.begin_transaction()
    producer.produce(topic, value=b"last", partition=0)
    producer.commit_transaction(TIMEOUT)

    committed = consumer(server, "read_committed")
    uncommitted = consumer(server, "read_uncommitted")
    try:
        seen = read_all(committed, topic, 2)
        assert sorted(seen) == sorted([b"c%d" % i for i in range(10)] + [b"last"])
        everything = read_all(uncommitted, topic, 2)
        assert sorted(everything) == sorted(
            [b"c%d" % i for i in range(10)] + [b"a%d" % i for i in range(6)] + [b"last"]
        )
    finally:
        committed.close()
        uncommitted.close()


def test_offsets_sent_to_a_transaction_move_only_on_commit(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    source, sink = create_topic(), create_topic()
    plain = Producer({"bootstrap.servers": server.bootstrap})
    for i in range(10):
        plain.produce(source, value=b"%d" % i)
    plain.flush(TIMEOUT)
    group = "g-offsets"
    c = consumer(server, "read_committed", group)
    checker = consumer(server, "read_uncommitted", group)  # OffsetFetch without require_stable
    partition = [TopicPartition(source, 0)]
    producer = txn_producer(server, "tx-offsets")
    try:
        c.assign([TopicPartition(source, 0, 0)])
        for expected, commit in ((-1001, False), (7, True)):  # -1001: no committed offset
            producer.begin_transaction()
            got = 0
            while got < (3 if commit else 4):
                msg = c.poll(1.0)
                if msg is not None and not msg.error():
                    producer.produce(sink, value=msg.value())
                    got += 1
            producer.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT)
            assert checker.committed(partition, TIMEOUT)[0].offset == -1001  # nothing moves before the end
            with pytest.raises(KafkaException) as unstable:  # require_stable: UNSTABLE_OFFSET_COMMIT, retried
                c.committed(partition, 1.0)
            assert unstable.value.args[0].code() == KafkaError._TIMED_OUT, unstable.value
            if commit:
                producer.commit_transaction(TIMEOUT)
            else:
                producer.abort_transaction(TIMEOUT)
            assert checker.committed(partition, TIMEOUT)[0].offset == expected
            assert c.committed(partition, TIMEOUT)[0].offset == expected
    finally:
        c.close()
        checker.close()


def test_a_second_producer_fences_the_first(server: ServerProcess, create_topic: Callable[..., str]) -> None:
    topic = create_topic()
    zombie = txn_producer(server, "tx-fence")
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie")
    zombie.flush(TIMEOUT)
    fresh = txn_producer(server, "tx-fence")  # aborts the zombie's transaction and fences it
    fresh.begin_transaction()
    fresh.produce(topic, value=b"fresh")
    fresh.commit_transaction(TIMEOUT)
    with pytest.raises(KafkaException) as raised:
        zombie.produce(topic, value=b"late")
        zombie.commit_transaction(TIMEOUT)
    error = raised.value.args[0]
    assert error.fatal(), error
    assert error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
    c = consumer(server, "read_committed")
    try:
        assert read_all(c, topic) == [b"fresh"]
    finally:
        c.close()


def test_an_expired_transaction_is_aborted(server: ServerProcess, create_topic: Callable[..., str]) -> None:
    topic = create_topic()
    producer = txn_producer(server, "tx-timeout", **{"transaction.timeout.ms": 1000})
    producer.begin_transaction()
    producer.produce(topic, value=b"expires")
    producer.flush(TIMEOUT)
    time.sleep(2.0)  # the coordinator checks every 0.5 s
    c = consumer(server, "read_committed")
    try:
        assert read_all(c, topic) == []  # the end (last stable offset) is past the aborted record
    finally:
        c.close()
    with pytest.raises(KafkaException):
        producer.commit_transaction(TIMEOUT)
    assert "timed out after 1000 ms" in server.log()


@pytest.mark.slow
def test_an_open_transaction_is_aborted_after_kill_9(server: ServerProcess, create_topic: Callable[..., str]) -> None:
    topic = create_topic()
    producer = txn_producer(server, "tx-crash")
    producer.begin_transaction()
    producer.produce(topic, value=b"kept")
    producer.commit_transaction(TIMEOUT)
    producer.begin_transaction()
    producer.produce(topic, value=b"lost")
    producer.flush(TIMEOUT)  # stored and acknowledged, the transaction still open
    server.restart(kill=True)
    c = consumer(server, "read_committed")
    u = consumer(server, "read_uncommitted")
    try:
        assert read_all(c, topic) == [b"kept"]  # progresses to the end: nothing open any more
        assert read_all(u, topic) == [b"kept", b"lost"]
    finally:
        c.close()
        u.close()
    again = txn_producer(server, "tx-crash")  # the transactional id carries on, a new epoch
    again.begin_transaction()
    again.produce(topic, value=b"after")
    again.commit_transaction(TIMEOUT)
    c = consumer(server, "read_committed")
    try:
        assert read_all(c, topic) == [b"kept", b"after"]
    finally:
        c.close()


@pytest.mark.slow
def test_consume_transform_produce_is_exactly_once_across_a_producer_kill(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    source, sink = create_topic(), create_topic()
    plain = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": True})
    values = [b"v%03d" % i for i in range(100)]
    for v in values:
        plain.produce(source, value=v)
    plain.flush(TIMEOUT)
    worker = [sys.executable, str(Path(__file__).with_name("txn_worker.py")), server.bootstrap, source, sink,
              "g-ctp", "tx-ctp", "10"]  # fmt: skip
    first = subprocess.run([*worker, "3"], timeout=60, capture_output=True)
    assert first.returncode == -9, first.stderr.decode()[-2000:]
    second = subprocess.run(worker, timeout=60, capture_output=True)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    c = consumer(server, "read_committed")
    u = consumer(server, "read_uncommitted")
    try:
        assert read_all(c, sink) == [v.upper() for v in values]  # each once, in order
        assert len(read_all(u, sink)) == len(values) + 5  # the killed half batch is there, aborted
    finally:
        c.close()
        u.close()


# --- the coordinator driven directly (no server process) ------------------------------


def _coordinator(broker: Broker) -> tuple[TransactionCoordinator, ProducerStates]:
    states = ProducerStates(broker)
    return TransactionCoordinator(
        broker, new_producer_id=states.new_producer_id, partition_lock=states.partition
    ), states


def _write(broker: Broker, txns: TransactionCoordinator, pid: int, epoch: int, values: list[bytes]) -> int:
    """One transactional batch on t[0], as an embedded producer would store it."""
    n = len(values)
    rows = build_batch(base_offset=0, timestamps=[1] * n, keys=[None] * n, key_formats=[0] * n, values=values,
                       value_formats=[1] * n)  # fmt: skip
    return txns.append("t", 0, pid, epoch, rows, sync=True)


def test_index_markers_and_recovery_of_an_open_transaction(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    topics.create_topic(broker, "t")
    txns, states = _coordinator(broker)
    pid, epoch = txns.init_producer("a", 60_000)
    txns.add_partitions("a", pid, epoch, [("t", 0)])
    _write(broker, txns, pid, epoch, [b"c1", b"c2"])
    txns.end("a", pid, epoch, commit=True)  # marker at 2
    txns.add_partitions("a", pid, epoch, [("t", 0)])
    _write(broker, txns, pid, epoch, [b"x1"])  # offset 3
    txns.end("a", pid, epoch, commit=False)  # marker at 4
    txns.add_partitions("a", pid, epoch, [("t", 0)])
    _write(broker, txns, pid, epoch, [b"open"])  # offset 5, left open
    assert txns.last_stable_offset("t", 0, broker.log("t", 0).high_watermark) == 5
    assert txns.aborted_in("t", 0, 0, 10) == [(3, 4)]
    with pytest.raises(InvalidTxnStateError):
        txns.before_append("t", 1, pid, epoch, 0, 1)  # never added
    txns.close()
    states.close()
    broker.close()

    broker = Broker(tmp_path)  # as after kill -9: the open transaction is aborted on open
    txns, states = _coordinator(broker)
    log = broker.log("t", 0)
    assert log.high_watermark == 7  # the abort marker at 6
    assert txns.last_stable_offset("t", 0, 7) == 7
    assert txns.aborted_in("t", 0, 0, 10) == [(3, 4), (5, 6)]
    table = log.read(0, 100)
    assert table.column("value").to_pylist() == [b"c1", b"c2", CONTROL_VALUE, b"x1", CONTROL_VALUE, b"open",
                                                 CONTROL_VALUE]  # fmt: skip
    visible = table.filter(pa.array(visible_mask(table, txns.aborted_in("t", 0, 0, 10))))
    assert visible.column("value").to_pylist() == [b"c1", b"c2"]
    sql = visible_filter_sql(txns.aborted_in("t", 0, 0, 10))
    con = duckdb.connect()
    con.register("stored", table)
    got = con.sql(f'SELECT value FROM stored WHERE {sql} ORDER BY "offset"').fetchall()
    assert [bytes(v) for (v,) in got] == [b"c1", b"c2"]
    assert read_index(tmp_path).aborted == {("t", 0): [(3, 4), (5, 6)]}
    got, position = [], 0
    while position < 7:  # an embedded consumer's loop, a row at a time: it never stalls on a marker
        rows, position = read_visible(log, read_index(tmp_path), "t", 0, position, 1, committed=True)
        got += rows.column("value").to_pylist()
    assert got == [b"c1", b"c2"]
    rows, position = read_visible(log, txns.index, "t", 0, 0, 100, committed=False)
    assert (rows.column("value").to_pylist(), position) == ([b"c1", b"c2", b"x1", b"open"], 7)
    with pytest.raises(ProducerFencedError):  # the restart bumped the epoch
        txns.add_partitions("a", pid, epoch, [("t", 0)])
    described = txns.describe("a")
    assert described is not None and described.epoch == epoch + 1
    txns.close()
    states.close()
    broker.close()


def test_a_batch_line_whose_append_never_happened_is_dropped(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    topics.create_topic(broker, "t")
    txns, states = _coordinator(broker)
    pid, epoch = txns.init_producer("a", 60_000)
    txns.add_partitions("a", pid, epoch, [("t", 0)])
    txns.before_append("t", 0, pid, epoch, 0, 3)  # the crash comes before the append
    txns.close()
    states.close()
    broker.close()
    broker = Broker(tmp_path)
    txns, states = _coordinator(broker)
    assert txns.aborted_in("t", 0, 0, 10) == []  # offsets 0-2 were never this transaction's
    assert broker.log("t", 0).high_watermark == 1  # just the abort marker
    txns.close()
    states.close()
    broker.close()


# --- the wire, raw: what admin tools and the KIP-890 verification ask -------------------


def test_describe_list_verify_and_the_last_stable_offset(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    topic = create_topic(2)
    ms = datetime.timedelta(milliseconds=1)
    with RawClient(server.bootstrap) as client:

        def call(api_key: int, version: int, **fields: Any) -> Any:
            return client.call(kio_request(api_key, version, **fields))

        def produce(data: bytes, tid: str | None) -> None:
            answer = call(0, 9, transactional_id=tid, acks=-1, timeout=5000 * ms,
                          topic_data=[{"name": topic, "partition_data": [{"index": 0, "records": data}]}])  # fmt: skip
            assert answer.responses[0].partition_responses[0].error_code.value == 0

        def latest(isolation: int) -> int:
            wanted = [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}]
            answer = call(2, 7, replica_id=-1, isolation_level=isolation, topics=wanted)
            return int(answer.topics[0].partitions[0].offset)

        init = call(
            22, 4, transactional_id="tx-raw", transaction_timeout=60_000 * ms, producer_id=-1, producer_epoch=-1
        )
        pid, epoch = int(init.producer_id), int(init.producer_epoch)
        produce(records(b"plain"), None)  # offset 0
        added = call(24, 3, v3_and_below_transactional_id="tx-raw", v3_and_below_producer_id=pid,
                     v3_and_below_producer_epoch=epoch,
                     v3_and_below_topics=[{"name": topic, "partitions": [0]}])  # fmt: skip
        assert added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code.value == 0
        produce(records(b"t1", b"t2", producer_id=pid, producer_epoch=epoch, base_sequence=0, transactional=True),
                "tx-raw")  # fmt: skip  # offsets 1-2
        assert (latest(0), latest(1)) == (3, 1)  # read_committed: the last stable offset

        verify = call(24, 5, transactions=[
            {"transactional_id": "tx-raw", "producer_id": pid, "producer_epoch": epoch, "verify_only": True,
             "topics": [{"name": topic, "partitions": [0, 1]}]}])  # fmt: skip
        codes = [
            p.partition_error_code.value for p in verify.results_by_transaction[0].topic_results[0].results_by_partition
        ]
        assert codes == [0, 48]  # partition 1 is not in the transaction: INVALID_TXN_STATE

        described = call(65, 0, transactional_ids=["tx-raw", "nobody"]).transaction_states
        assert described[0].transaction_state == "Ongoing" and int(described[0].producer_id) == pid
        assert [(d.topic, list(d.partitions)) for d in described[0].topics] == [(topic, [0])]
        assert described[1].error_code.value == 105  # TRANSACTIONAL_ID_NOT_FOUND
        listed = call(66, 2, state_filters=["Ongoing", "Bogus"], producer_id_filters=[], duration_filter=-1,
                      transactional_id_pattern="tx-r.*")  # fmt: skip
        assert [s.transactional_id for s in listed.transaction_states] == ["tx-raw"]
        assert list(listed.unknown_state_filters) == ["Bogus"]

        stale = call(26, 4, transactional_id="tx-raw", producer_id=pid, producer_epoch=epoch - 1, committed=True)
        assert stale.error_code.value == 90  # PRODUCER_FENCED
        ended = call(26, 4, transactional_id="tx-raw", producer_id=pid, producer_epoch=epoch, committed=True)
        assert ended.error_code.value == 0
        assert (latest(0), latest(1)) == (4, 4)  # the commit marker is at 3
        fetched = call(1, 12, max_wait=0 * ms, min_bytes=1, max_bytes=1 << 20, isolation_level=1,
                       forgotten_topics_data=[], topics=[{"topic": topic, "partitions": [
                           {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}],
                       ).responses[0].partitions[0]  # fmt: skip
        batches = decode_batches(fetched.records)
        # The producers' own batches (batch_passthrough.py), then the coordinator's marker.
        assert [(b.is_control, [r.value for r in b.records]) for b in batches] == [
            (False, [b"plain"]), (False, [b"t1", b"t2"]), (True, [CONTROL_VALUE])]  # fmt: skip
        assert batches[1].is_transactional and batches[1].producer_id == pid
        assert batches[2].producer_id == pid and batches[2].base_offset == 3
        assert int(fetched.last_stable_offset) == 4


def test_aiokafka_transactions(server: ServerProcess, create_topic: Callable[..., str]) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = create_topic()

    async def run() -> dict[str, list[bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=server.bootstrap, transactional_id="tx-aio")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed")
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"aborted")
            await producer.abort_transaction()
        finally:
            await producer.stop()
        seen = {}
        for isolation in ("read_committed", "read_uncommitted"):
            c = AIOKafkaConsumer(topic, bootstrap_servers=server.bootstrap, isolation_level=isolation,
                                 auto_offset_reset="earliest")  # fmt: skip
            await c.start()
            try:
                values: list[bytes] = []
                for _ in range(20):
                    batches = await c.getmany(timeout_ms=500)
                    values += [m.value for msgs in batches.values() for m in msgs if m.value is not None]
                    if (
                        c.assignment() and await c.position(next(iter(c.assignment()))) >= 4
                    ):  # both records and both markers
                        break
                seen[isolation] = values
            finally:
                await c.stop()
        return seen

    assert asyncio.run(run()) == {"read_committed": [b"committed"], "read_uncommitted": [b"committed", b"aborted"]}


def test_timeouts_abort_and_fence_on_the_injected_clock(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    topics.create_topic(broker, "t")
    now = [1000.0]
    states = ProducerStates(broker)
    txns = TransactionCoordinator(
        broker, new_producer_id=states.new_producer_id, partition_lock=states.partition, clock=lambda: now[0]
    )
    try:
        pid, epoch = txns.init_producer("a", 5_000)
        txns.add_partitions("a", pid, epoch, [("t", 0)])
        _write(broker, txns, pid, epoch, [b"x"])
        now[0] += 4.0
        assert txns.abort_expired() == []
        assert txns.last_stable_offset("t", 0, 1) == 0
        now[0] += 2.0
        assert txns.abort_expired() == ["a"]
        assert txns.last_stable_offset("t", 0, 2) == 2  # the abort marker is at 1
        assert txns.aborted_in("t", 0, 0, 2) == [(0, 1)]
        with pytest.raises(ProducerFencedError):
            txns.end("a", pid, epoch, commit=True)
        assert txns.list_transactions(states=["CompleteAbort"])[0].epoch == epoch + 1
    finally:
        txns.close()
        states.close()
        broker.close()
