"""`streamlab serve` applies retention and compaction on a schedule
(``log.retention.check.interval.ms``), not only when a directory is opened or a segment
is sealed: a long-running server expires and compacts what nobody writes to any more.
Observed from a real client, without restarting the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from helpers import wait_until
from secure_harness import SecureServer

from streamlab.broker.retention import RetentionResult
from streamlab.errors import ConfigError
from streamlab.server.retention_schedule import RetentionSchedule

INTERVAL_MS = 200


@pytest.fixture(scope="module")
def scheduled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    tmp = tmp_path_factory.mktemp("retention-schedule")
    proc = SecureServer(tmp / "data", tmp / "server.log", ["--log-retention-check-interval-ms", str(INTERVAL_MS)])
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def create(server: SecureServer, name: str, config: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config)], operation_timeout=10)[name].result(timeout=10)


def produce(server: SecureServer, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """One produce request (linger lets librdkafka put every record in one batch)."""
    producer = Producer({"bootstrap.servers": server.bootstrap, "acks": "all", "linger.ms": 200})
    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=0)
    assert producer.flush(15) == 0


def watermarks(server: SecureServer, topic: str) -> tuple[int, int]:
    """(earliest, latest) through ListOffsets, as a real client asks."""
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "unused"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        return int(low), int(high)
    finally:
        consumer.close()


def read_all(server: SecureServer, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "unused", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})  # fmt: skip
    try:
        consumer.assign([TopicPartition(topic, 0, -2)])  # -2: OFFSET_BEGINNING
        got: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + 15
        while len(got) < expected and time.monotonic() < deadline:
            got.extend((m.key(), m.value()) for m in consumer.consume(100, 0.5) if m.error() is None)
        return got
    finally:
        consumer.close()


def test_expired_records_are_deleted_while_the_server_runs(scheduled_server: SecureServer) -> None:
    topic = "expiring"
    create(scheduled_server, topic, {"retention.ms": "1500", "segment.bytes": "1024"})
    produce(scheduled_server, topic, [(b"k", b"v%d" % i) for i in range(20)])
    assert watermarks(scheduled_server, topic) == (0, 20)  # fresh: nothing expired at the seal
    # Nothing is written any more: only the schedule can notice that the records expired.
    wait_until(lambda: watermarks(scheduled_server, topic)[0] == 20, 10, "the log start to pass the expired records")
    assert watermarks(scheduled_server, topic) == (20, 20)
    assert "retention" in scheduled_server.log()


def test_superseded_records_are_compacted_while_the_server_runs(scheduled_server: SecureServer) -> None:
    topic = "compacted"
    create(scheduled_server, topic, {"cleanup.policy": "compact", "segment.bytes": "65536"})
    keys = [b"key-%d" % i for i in range(10)]
    produce(scheduled_server, topic, [(k, b"old" * 10_000) for k in keys])  # 300 kB: sealed at once
    produce(scheduled_server, topic, [(k, b"new") for k in keys])  # small: stays in the active segment
    # The seal came before the new values, so compaction at the seal had nothing to drop;
    # the schedule sees that every old value is superseded.
    wait_until(lambda: watermarks(scheduled_server, topic)[0] == 10, 10, "the compacted old values to go")
    records = read_all(scheduled_server, topic, 10)
    assert sorted(records) == sorted((k, b"new") for k in keys)
    assert Counter(k for k, _ in records) == dict.fromkeys(keys, 1)
    assert "Traceback" not in scheduled_server.log()


def test_rounds_run_in_a_thread_never_overlap_and_survive_failures(caplog: pytest.LogCaptureFixture) -> None:
    """A slow round leaves the event loop free; rounds never overlap (the ticks a slow
    round covers are skipped); a failed round is one warning line and the next one runs."""
    running, overlaps, calls = [0], [0], []

    def apply(broker: object, *, now_ms: int) -> RetentionResult:
        calls.append(now_ms)
        running[0] += 1
        overlaps[0] = max(overlaps[0], running[0])
        try:
            time.sleep(0.1)  # five intervals
            if len(calls) == 1:
                raise OSError("No space left on device")
            return RetentionResult(segments_deleted=1, records_compacted=0)
        finally:
            running[0] -= 1

    async def main() -> int:
        schedule = RetentionSchedule(None, interval_ms=20, apply=apply)  # type: ignore[arg-type]
        task = asyncio.create_task(schedule.run())
        ticks = 0
        while schedule.rounds < 3:  # the loop keeps running while rounds sleep in their thread
            await asyncio.sleep(0.005)
            ticks += 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return ticks

    with caplog.at_level(logging.INFO, logger="streamlab.server"):
        ticks = asyncio.run(main())
    assert ticks > 20
    assert overlaps[0] == 1
    assert len(calls) in (3, 4)  # about 0.3 s of rounds, never 15 of the 20 ms ticks
    failures = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(failures) == 1 and failures[0].exc_info is None
    assert "retention check failed" in failures[0].getMessage() and "No space left" in failures[0].getMessage()
    assert any("1 segments deleted" in r.getMessage() for r in caplog.records)


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"log\.retention\.check\.interval\.ms"):
        RetentionSchedule(None, interval_ms=0)  # type: ignore[arg-type]
