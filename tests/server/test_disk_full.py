"""A full disk under `streamlab serve`: the Produce answer is KAFKA_STORAGE_ERROR at once,
nothing of a failed write is kept, and an idempotent producer that retries until space is
freed ends with every record stored exactly once, in order, across a kill -9."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer
from harness import ServerProcess
from test_crash import read_back


def _create(server: ServerProcess, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "-1"})])[topic].result(10)


def test_a_full_disk_answers_storage_error_at_once_and_an_idempotent_producer_loses_nothing(
    small_disk: Path, fill_disk: Callable[[Path], Path], tmp_path: Path
) -> None:
    server = ServerProcess(small_disk / "data", tmp_path / "server.log")
    server.start()
    try:
        _create(server, "t")
        # Without retries, the broker's answer reaches the application as it is.
        plain = Producer({"bootstrap.servers": server.bootstrap, "acks": "all", "retries": 0, "linger.ms": 0})
        reports: list[KafkaError | None] = []

        def report(err: KafkaError | None, _message: Message) -> None:
            reports.append(err)

        plain.produce("t", b"warm-up", on_delivery=report)
        plain.flush(10)
        assert reports == [None]

        idempotent = Producer({
            "bootstrap.servers": server.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": 60_000, "retry.backoff.ms": 100, "retry.backoff.max.ms": 200,
        })  # fmt: skip
        acked: list[tuple[int, int]] = []
        failed: list[KafkaError] = []

        def delivered(err: KafkaError | None, message: Message) -> None:
            if err is None:
                acked.append((int(message.value()), message.offset()))
            else:
                failed.append(err)

        for i in range(200):
            idempotent.produce("t", b"%d" % i, on_delivery=delivered)
        idempotent.flush(20)
        filler = fill_disk(small_disk)

        started = time.monotonic()
        plain.produce("t", b"x" * 4000, on_delivery=report)
        plain.flush(10)
        assert reports[-1] is not None and reports[-1].code() == KafkaError.KAFKA_STORAGE_ERROR
        assert time.monotonic() - started < 5  # answered, not left to the client's timeout

        for i in range(200, 500):
            idempotent.produce("t", b"%d" % i + b" " * 2000, on_delivery=delivered)
        idempotent.poll(2)  # these meet the full disk and are retried by the client
        filler.unlink()
        assert idempotent.flush(60) == 0
        assert not failed, failed
        assert [v for v, _ in acked] == list(range(500))
        server.restart()  # kill -9, then start on the same directory
        got = read_back(server.bootstrap, "t", 1, expected=501)
        values = [int(m.value()) for m in got if m.value() != b"warm-up"]
        assert values == list(range(500))  # every acknowledged record, once, in order
        assert [m.offset() for m in got] == list(range(len(got)))
        assert "Traceback" not in server.log()
    finally:
        server.kill()
