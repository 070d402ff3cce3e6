"""Bad input, many clients, slow and vanishing clients: the server keeps serving everyone else."""

from __future__ import annotations

import asyncio
import datetime
import random
import socket
import struct
import time
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition
from harness import ServerProcess
from kafka_wire import KAFKA_PYTHON, RawClient, frame, kio_request, records, sample_frame

from streamlab.protocol.framing import SUPPORTED_APIS

MS = datetime.timedelta(milliseconds=1)
FUZZ_FRAMES = 10_000
GENERATED = 11_000  # a batch is lost when the server closes while it is being written
MAX_REQUEST_BYTES = 100 * 1024 * 1024


def assert_clean_log(server: ServerProcess) -> None:
    """No handler crashed: every bad input was an error code or a closed connection."""
    log = server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-5000:]


def round_trip(bootstrap: str, topic: str, n: int = 20, timeout: float = 20) -> None:
    """A real client (librdkafka) produces ``n`` records with acks=all and reads them back."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": int(timeout * 1000)})
    for i in range(n):
        producer.produce(topic, value=b"check %d" % i, partition=0)
    assert producer.flush(timeout) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            got.extend(m.value() for m in consumer.consume(100, 0.5) if m.error() is None)
        assert got[-n:] == [b"check %d" % i for i in range(n)]
    finally:
        consumer.close()


# --- fuzzing -----------------------------------------------------------------------------
def _mutate(rng: random.Random, seed: bytes) -> bytes:
    body = bytearray(seed[4:])
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and body:  # flip bits
            body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        elif op == 1 and body:  # truncate
            del body[rng.randrange(len(body)) :]
        elif op == 2:  # insert random bytes
            at = rng.randrange(len(body) + 1)
            body[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and len(body) >= 4:  # an extreme int32 somewhere (lengths, counts)
            at = rng.randrange(len(body) - 3)
            body[at : at + 4] = struct.pack(">i", rng.choice([-1, -(2**31), 2**31 - 1, 0x7FFF, 100_000]))
        elif op == 4 and len(body) >= 4:  # another version of the API
            struct.pack_into(">h", body, 2, rng.randint(-2, 20))
        elif op == 5 and len(body) >= 2:  # another API
            struct.pack_into(">h", body, 0, rng.randint(-1, 80))
        elif op == 6 and body:  # overwrite a run with random bytes
            at = rng.randrange(len(body))
            body[at : at + 4] = rng.randbytes(4)
    size = len(body)
    if rng.random() < 0.05:
        size += rng.randint(-3, 3)  # a size prefix that lies (too long: the server waits, then sees EOF)
    return struct.pack(">i", size) + bytes(body)


def _share_seeds() -> list[bytes]:
    """Valid share-group requests (kafka-python has no share-group APIs), built with kio."""
    import uuid

    tid = uuid.UUID(int=0x1234)
    acks = [{"first_offset": 0, "last_offset": 2, "acknowledge_types": [1, 2, 3]}]
    bodies = [kio_request(76, 1, group_id="fz", member_id="m-fz", member_epoch=0, rack_id=None,
                          subscribed_topic_names=["fuzz"])]  # fmt: skip
    for version in (1, 2):
        bodies.append(kio_request(
            78, version, group_id="fz", member_id="m-fz", share_session_epoch=0, max_wait=10 * MS, min_bytes=1,
            max_bytes=1 << 20, max_records=10, batch_size=10, forgotten_topics_data=[],
            topics=[{"topic_id": tid, "partitions": [{"partition_index": 0, "acknowledgement_batches": acks}]}],
        ))  # fmt: skip
        bodies.append(kio_request(
            79, version, group_id="fz", member_id="m-fz", share_session_epoch=1,
            topics=[{"topic_id": tid, "partitions": [{"partition_index": 0, "acknowledgement_batches": acks}]}],
        ))  # fmt: skip
    return [frame(body) for body in bodies]


def _fuzz_frames(rng: random.Random) -> list[bytes]:
    seeds = [sample_frame(key, version) for key, (low, high) in SUPPORTED_APIS.items() if key in KAFKA_PYTHON
             for version in range(low, high + 1)]  # fmt: skip
    seeds += _share_seeds()
    # Every valid request once first, in batches of valid frames: each reaches its handler
    # (in the mix below, a junk frame ahead of it in the same connection would close it first).
    frames = list(seeds)
    for _ in range(GENERATED):
        kind = rng.random()
        if kind < 0.2:  # random bytes with an honest size
            junk = rng.randbytes(rng.randint(0, 64))
            frames.append(struct.pack(">i", len(junk)) + junk)
        elif kind < 0.25:  # random bytes, no framing at all
            frames.append(rng.randbytes(rng.randint(1, 16)))
        elif kind < 0.3:  # valid requests in between, so state-changing paths run too
            frames.append(rng.choice(seeds))
        else:
            frames.append(_mutate(rng, rng.choice(seeds)))
    return frames


async def _send_all(bootstrap: str, frames: list[bytes], workers: int = 16) -> int:
    host, port = bootstrap.rsplit(":", 1)
    queue = list(reversed(frames))
    rng = random.Random(7)
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while queue:
            batch = [queue.pop() for _ in range(min(len(queue), rng.randint(1, 4)))]
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(b"".join(batch))
                await writer.drain()
                writer.write_eof()  # half-close: the server reads everything, answers, sees EOF
                sent += len(batch)  # delivered to the server's socket
                async with asyncio.timeout(1.0):  # long polls may hold an answer back: do not wait
                    while await reader.read(65536):
                        pass
            except (TimeoutError, ConnectionError):
                pass
            finally:
                writer.transport.abort()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return sent


def test_fuzzed_frames_leave_the_server_serving(server: ServerProcess, create_topic: Callable[..., str]) -> None:
    frames = _fuzz_frames(random.Random(20261125))
    assert asyncio.run(_send_all(server.bootstrap, frames)) >= FUZZ_FRAMES
    assert server.process is not None and server.process.poll() is None
    round_trip(server.bootstrap, create_topic())
    assert_clean_log(server)


# --- limits, crowds, slow and vanishing clients -------------------------------------------
def test_oversized_frame_closes_only_that_connection(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic()
    with RawClient(shared_server.bootstrap) as good:
        for size in (MAX_REQUEST_BYTES + 1, 2**31 - 1, -5):
            with RawClient(shared_server.bootstrap) as bad:
                bad.sock.sendall(struct.pack(">i", size) + b"\0" * 1024)
                assert bad.is_closed_by_server()
            assert good.call(kio_request(18, 3, client_software_name="t", client_software_version="1")).error_code == 0
    round_trip(shared_server.bootstrap, topic)
    assert_clean_log(shared_server)


async def _client(bootstrap: str, topic: str, n: int) -> int:
    """One connection: ApiVersions, Produce, then Fetch until it sees its own record."""
    host, port = bootstrap.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))

    async def call(body: object, correlation_id: int) -> bytes:
        writer.write(frame(body, correlation_id))
        await writer.drain()
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        data = await reader.readexactly(size)
        assert struct.unpack_from(">i", data) == (correlation_id,)
        return data

    try:
        await call(kio_request(18, 3, client_software_name="crowd", client_software_version=str(n)), 1)
        produce = kio_request(0, 9, transactional_id=None, acks=1, timeout=5000 * MS, topic_data=[
            {"name": topic, "partition_data": [{"index": 0, "records": records(b"client %d" % n)}]}])  # fmt: skip
        await call(produce, 2)
        fetch = kio_request(
            1,
            12,
            max_wait=500 * MS,
            min_bytes=1,
            forgotten_topics_data=[],
            topics=[
                {"topic": topic, "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}
            ],
        )
        return len(await call(fetch, 3))
    finally:
        writer.close()


def test_a_hundred_and_twenty_concurrent_clients(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic()

    async def crowd() -> list[int]:
        async with asyncio.timeout(60):
            return await asyncio.gather(*(_client(shared_server.bootstrap, topic, n) for n in range(120)))

    assert all(size > 0 for size in asyncio.run(crowd()))
    with RawClient(shared_server.bootstrap) as client:
        latest = kio_request(
            2,
            7,
            replica_id=-1,
            isolation_level=0,
            topics=[{"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}],
        )
        assert client.call(latest).topics[0].partitions[0].offset == 120
    assert_clean_log(shared_server)


def test_vanishing_and_slow_clients_do_not_stall_others(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    big, small = create_shared_topic(), create_shared_topic()
    fetch_big = kio_request(
        1,
        12,
        max_wait=0 * MS,
        min_bytes=0,
        forgotten_topics_data=[],
        topics=[{"topic": big, "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}],
    )
    long_poll = kio_request(
        1,
        12,
        max_wait=20_000 * MS,
        min_bytes=1 << 20,
        forgotten_topics_data=[],
        topics=[{"topic": small, "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}],
    )
    with RawClient(shared_server.bootstrap) as loader:
        for _ in range(8):  # 8 MiB to fetch
            produce = kio_request(
                0,
                9,
                transactional_id=None,
                acks=1,
                timeout=5000 * MS,
                topic_data=[
                    {"name": big, "partition_data": [{"index": 0, "records": records(*[b"x" * 100_000] * 10)}]}
                ],
            )
            assert loader.call(produce).responses[0].partition_responses[0].error_code == 0

    # A slow client: asks for far more than its socket buffers hold and never reads.
    slow = socket.create_connection(("127.0.0.1", shared_server.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"".join(frame(fetch_big, i) for i in range(200)))
    # Clients that vanish: mid-frame, while a long poll is parked, and with a reset.
    for data in (frame(fetch_big)[:30], frame(long_poll)):
        gone = socket.create_connection(("127.0.0.1", shared_server.port))
        gone.sendall(data)
        gone.close()
    reset = socket.create_connection(("127.0.0.1", shared_server.port))
    reset.sendall(frame(fetch_big))
    reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    reset.close()  # RST

    try:
        start = time.monotonic()
        with RawClient(shared_server.bootstrap) as other:
            for _ in range(20):
                other.call(kio_request(3, 12, topics=None, include_topic_authorized_operations=False))
        assert time.monotonic() - start < 5
        round_trip(shared_server.bootstrap, small)
    finally:
        slow.close()
    assert_clean_log(shared_server)
