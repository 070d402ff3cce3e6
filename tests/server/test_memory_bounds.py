"""`streamlab serve` stays within memory whatever its clients do (issue 10, finding 9).

Before: 16 connections pipelining Fetches with max_bytes 2**31-1 on a 200 MB partition,
never reading, took the server from 0.5 GB to 13 GB of RSS while other clients waited;
connections stalled midway through 99 MiB frames held 4.2 GB, kept after they closed.
Here a real `streamlab serve` process is attacked the same way (on a smaller partition,
to stay fast) while its resident memory is read from /proc, and a well-behaved client
(librdkafka) must still be served meanwhile.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka_wire import RawClient, frame, kio_request
from secure_harness import SecureServer

import streamlab

MB = 1024 * 1024
MS = datetime.timedelta(milliseconds=1)
VALUE_BYTES = 4096
RECORDS = 36_000  # about 150 MB of incompressible values
FETCH_MAX_BYTES = 57_671_680  # Kafka's default fetch.max.bytes
PIPELINED = 40  # Fetch requests each hostile connection sends ahead


def rss(server: SecureServer) -> int:
    """The server's resident memory in bytes (VmRSS)."""
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class RssSampler:
    """Samples the server's RSS every 50 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, server: SecureServer) -> None:
        self.server, self.peak, self._stop = server, rss(server), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss(self.server))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """A server over a directory whose topic "big" holds ~150 MB in one partition, written
    with the embedded API before the server starts."""
    tmp = tmp_path_factory.mktemp("memory-bounds")
    lab = streamlab.connect(tmp / "data")
    try:
        lab.create_topic("big", 1)
        blob = os.urandom(VALUE_BYTES * RECORDS)
        producer = lab.producer()
        for i in range(RECORDS):
            producer.send("big", blob[i * VALUE_BYTES : (i + 1) * VALUE_BYTES], partition=0)
        producer.close()
    finally:
        lab.close()
    proc = SecureServer(tmp / "data", tmp / "server.log", [])
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def fetch_request(topic: str, *, max_bytes: int = 2**31 - 1, partition_max_bytes: int = 2**31 - 1,
                  version: int = 12, offset: int = 0) -> object:  # fmt: skip
    fields: dict[str, object] = {
        "max_wait": 0 * MS, "min_bytes": 0,
        "topics": [{"topic": topic, "partitions": [
            {"partition": 0, "fetch_offset": offset, "partition_max_bytes": partition_max_bytes}]}],
    }  # fmt: skip
    if version >= 3:
        fields["max_bytes"] = max_bytes
    if version >= 7:
        fields["forgotten_topics_data"] = []
    return kio_request(1, version, **fields)


def records_size(response: object) -> int:
    return len(bytes(response.responses[0].partitions[0].records or b""))  # type: ignore[attr-defined]


def consume(bootstrap: str, topic: str, n: int, timeout: float) -> float:
    """Seconds librdkafka takes to read ``n`` records of ``topic`` from offset 0."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "well-behaved", "enable.auto.commit": False})
    start = time.monotonic()
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got = 0
        while got < n and time.monotonic() - start < timeout:
            got += sum(1 for m in consumer.consume(500, 0.5) if m.error() is None)
        assert got >= n, f"the well-behaved consumer got {got} of {n} records in {timeout}s"
        return time.monotonic() - start
    finally:
        consumer.close()


def assert_clean_log(server: SecureServer) -> None:
    log = server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-5000:]


@pytest.mark.slow
def test_fetchers_that_never_read_hold_bounded_memory(big_server: SecureServer) -> None:
    base = rss(big_server)
    sampler = RssSampler(big_server)
    hostile = []
    try:
        pipeline = b"".join(frame(fetch_request("big"), i) for i in range(PIPELINED))
        for _ in range(16):
            sock = socket.create_connection(("127.0.0.1", big_server.port))
            sock.sendall(pipeline)  # and never read
            hostile.append(sock)
        time.sleep(1.0)  # let them take what they can
        took = consume(big_server.bootstrap, "big", 3000, timeout=20)
        time.sleep(2.0)
        during = sampler.peak
    finally:
        for sock in hostile:
            sock.close()
    time.sleep(2.0)
    after = rss(big_server)
    peak = sampler.stop()
    print(f"RSS base {base / MB:.0f} MB, peak {peak / MB:.0f} MB, after close {after / MB:.0f} MB; "
          f"the consumer took {took:.1f}s")  # fmt: skip
    assert took < 10
    assert peak < 1536 * MB and peak - base < 800 * MB, (base, during, peak)
    assert after <= peak
    assert_clean_log(big_server)


@pytest.mark.slow
def test_frames_stalled_midway_hold_bounded_memory_returned_on_close(big_server: SecureServer) -> None:
    """40 connections each send all but 1 KiB of a 99 MiB frame and stall (before: 4 GB)."""
    base = rss(big_server)
    sampler = RssSampler(big_server)
    body = memoryview(bytes(99 * MB))
    stalled = [socket.create_connection(("127.0.0.1", big_server.port)) for _ in range(40)]

    def send(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # blocks while the server does not read; fails at close
            sock.sendall(struct.pack(">i", 99 * MB))
            sock.sendall(body[:-1024])

    senders = [threading.Thread(target=send, args=(sock,), daemon=True) for sock in stalled]
    try:
        for sender in senders:
            sender.start()
        # Meanwhile small requests are served at once.
        with RawClient(big_server.bootstrap) as good:
            for _ in range(30):
                start = time.monotonic()
                assert (
                    good.call(kio_request(18, 3, client_software_name="t", client_software_version="1")).error_code == 0
                )
                assert time.monotonic() - start < 1.0
                time.sleep(0.1)
        during = sampler.peak
    finally:
        for sock in stalled:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for sender in senders:
            sender.join(10)
    time.sleep(1.0)
    after = rss(big_server)
    peak = sampler.stop()
    print(f"RSS base {base / MB:.0f} MB, peak {peak / MB:.0f} MB, after close {after / MB:.0f} MB")
    assert peak - base < 400 * MB, (base, during, peak)
    assert after - base < 100 * MB, (base, peak, after)
    assert_clean_log(big_server)


def test_a_response_holds_at_most_fetch_max_bytes(big_server: SecureServer) -> None:
    with RawClient(big_server.bootstrap) as client:
        for version in (4, 12):  # v4 states max_bytes, v12 too; both are asked for 2 GiB
            size = records_size(client.call(fetch_request("big", version=version)))
            assert FETCH_MAX_BYTES - 2 * VALUE_BYTES < size <= FETCH_MAX_BYTES, (version, size)
        # max.partition.fetch.bytes is honoured as asked
        size = records_size(client.call(fetch_request("big", partition_max_bytes=100_000)))
        assert 100_000 - 2 * VALUE_BYTES < size <= 100_000
        size = records_size(client.call(fetch_request("big", max_bytes=50_000)))
        assert 50_000 - 2 * VALUE_BYTES < size <= 50_000
        # the first record is returned whole even when larger than both limits
        size = records_size(client.call(fetch_request("big", max_bytes=100, partition_max_bytes=100)))
        assert VALUE_BYTES < size < 2 * VALUE_BYTES


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    tmp = tmp_path_factory.mktemp("limited")
    args = ["--max-connections-per-ip", "4", "--fetch-max-bytes", "10000"]
    proc = SecureServer(tmp / "data", tmp / "server.log", args)
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def api_versions(client: RawClient) -> int:
    return int(client.call(kio_request(18, 3, client_software_name="t", client_software_version="1")).error_code)


def test_connections_past_max_connections_per_ip_are_closed(limited_server: SecureServer) -> None:
    clients = [RawClient(limited_server.bootstrap) for _ in range(4)]
    try:
        assert [api_versions(c) for c in clients] == [0] * 4
        for _ in range(3):
            with RawClient(limited_server.bootstrap) as extra:
                assert extra.is_closed_by_server()
        assert [api_versions(c) for c in clients] == [0] * 4  # the others are untouched
        clients.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the close, and the address has a free place again
            with RawClient(limited_server.bootstrap) as again:
                if not again.is_closed_by_server(timeout=0.2):
                    assert api_versions(again) == 0
                    break
            assert time.monotonic() < deadline
    finally:
        for client in clients:
            client.close()
    log = limited_server.log()
    assert log.count("max.connections.per.ip") == 1, log  # one warning, not one per refusal
    assert "Traceback" not in log


def test_fetch_max_bytes_is_configurable(limited_server: SecureServer) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": limited_server.bootstrap})
    admin.create_topics([NewTopic("small-limit", 1, 1)], operation_timeout=10)["small-limit"].result(timeout=10)
    producer = Producer({"bootstrap.servers": limited_server.bootstrap, "acks": "all"})
    for _ in range(20):
        producer.produce("small-limit", value=os.urandom(VALUE_BYTES), partition=0)
    assert producer.flush(15) == 0
    with RawClient(limited_server.bootstrap) as client:
        size = records_size(client.call(fetch_request("small-limit")))
        assert 10_000 - 2 * VALUE_BYTES < size <= 10_000
        # and librdkafka still reads everything, a few records per response
        assert consume(limited_server.bootstrap, "small-limit", 20, timeout=15) < 15


def test_the_limits_are_described_as_broker_configs(limited_server: SecureServer) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": limited_server.bootstrap})
    resource = ConfigResource(ResourceType.BROKER, "0")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    values = {name: entry.value for name, entry in configs.items()}
    assert values["fetch.max.bytes"] == "10000"
    assert values["max.connections.per.ip"] == "4"
    assert values["socket.request.max.bytes"] == str(100 * MB)
    assert values["queued.max.request.bytes"] == str(100 * MB)
