"""The server's memory budget (queued.max.request.bytes), in process: the accounting comes
back to zero when hostile connections end, a stalled holder is closed while others wait,
and the budget's rules (first fit, leases that never wait) hold.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from kafka_wire import frame, kio_request

import streamlab
from streamlab.broker import Broker
from streamlab.server import app, connection
from streamlab.server.context import ServerContext
from streamlab.server.limits import ServerLimits
from streamlab.server.memory import FETCH_FLOOR, MemoryBudget

KiB, MiB = 1024, 1024 * 1024
MS = datetime.timedelta(milliseconds=1)
LIMITS = ServerLimits(fetch_max_bytes=MiB, socket_request_max_bytes=2 * MiB, queued_max_request_bytes=4 * MiB)


def fetch_everything(topic: str) -> bytes:
    body = kio_request(1, 12, max_wait=0 * MS, min_bytes=0, max_bytes=2**31 - 1, forgotten_topics_data=[],
                       topics=[{"topic": topic, "partitions": [
                           {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 2**31 - 1}]}])  # fmt: skip
    return frame(body)


def serve_in_process(
    tmp_path: Path, scenario: Callable[[ServerContext, int], Awaitable[None]], limits: ServerLimits = LIMITS
) -> None:
    """Run ``scenario(ctx, port)`` against a KafkaServer over a directory holding topic
    "data" (20 MB in one partition)."""
    with streamlab.connect(tmp_path / "data") as lab:
        lab.create_topic("data", 1)
        producer = lab.producer()
        blob = os.urandom(20 * MiB)
        for i in range(0, len(blob), 8 * KiB):
            producer.send("data", blob[i : i + 8 * KiB], partition=0)
        producer.close()

    async def main() -> None:
        broker = Broker(tmp_path / "data")
        ctx = ServerContext(broker, "127.0.0.1", 0, limits=limits)
        server = app.KafkaServer(ctx, "127.0.0.1", 0)
        try:
            _, port = await server.start()
            await scenario(ctx, port)
        finally:
            await server.stop()
            ctx.close()
            broker.close()

    asyncio.run(main())


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_the_budget_comes_back_to_zero_when_hostile_connections_end(tmp_path: Path) -> None:
    async def scenario(ctx: ServerContext, port: int) -> None:
        writers = []
        for _ in range(8):  # pipelined fetches, never read
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(fetch_everything("data") * 20)
            writers.append(writer)
        for _ in range(8):  # frames stalled midway
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(struct.pack(">i", 2 * MiB) + bytes(MiB))
            writers.append(writer)
        await asyncio.sleep(1.0)
        # held: stuck responses and a frame; never much more than the budget
        assert ctx.memory.used > MiB
        assert ctx.memory.used <= LIMITS.queued_max_request_bytes + 16 * (FETCH_FLOOR + 2 * connection.CHUNK)
        for writer in writers:
            writer.transport.abort()
        await until(lambda: ctx.memory.used == 0)

    serve_in_process(tmp_path, scenario)


def test_a_stalled_holder_is_closed_while_others_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "STALL_S", 0.3)
    monkeypatch.setattr(app, "_SWEEP_S", 0.05)

    async def scenario(ctx: ServerContext, port: int) -> None:
        async def closed_by_server(reader: asyncio.StreamReader) -> bool:
            try:
                return await reader.read() == b""
            except ConnectionResetError:
                return True

        stalled = []
        for _ in range(3):  # each sends most of a 2 MiB frame: two fit in the 4 MiB budget
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(struct.pack(">i", 2 * MiB) + bytes(MiB + 512 * KiB))
            stalled.append((asyncio.create_task(closed_by_server(reader)), writer))
        # The third frame waits for memory: the two holders, which moved nothing for
        # STALL_S, are closed; then the third is read (and stalls, but nobody waits).
        await until(lambda: sum(task.done() for task, _ in stalled) >= 2)
        await asyncio.sleep(4 * app.STALL_S)  # the third holds memory too, but nobody waits for it
        done = [task for task, _ in stalled if task.done()]
        assert len(done) == 2 and all(task.result() for task in done)
        assert ctx.memory.used == 2 * MiB
        for task, writer in stalled:
            writer.transport.abort()
            task.cancel()
        await until(lambda: ctx.memory.used == 0)
        # and the server serves as before
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(kio_request(18, 3, client_software_name="t", client_software_version="1")))
        (size,) = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 5))
        assert size > 0
        writer.close()

    serve_in_process(tmp_path, scenario)


def test_frames_are_admitted_first_fit_and_leases_never_wait() -> None:
    async def main() -> None:
        budget = MemoryBudget(1000 * KiB)
        assert budget.lease(10 * MiB) == 750 * KiB  # a quarter stays for reading requests
        budget.release(750 * KiB)
        await budget.acquire(600 * KiB)
        big = asyncio.create_task(budget.acquire(500 * KiB))
        await asyncio.sleep(0)
        assert not big.done()
        await asyncio.wait_for(budget.acquire(300 * KiB), 1)  # fits: not held up behind the big one
        assert budget.used == 900 * KiB
        assert budget.lease(10 * MiB) == FETCH_FLOOR  # nothing spare: the floor, at once
        assert budget.lease(10) == 10  # what is asked, when less than the floor
        budget.release(FETCH_FLOOR + 10 + 600 * KiB)
        await asyncio.wait_for(big, 1)  # 300 + 500 fit now
        assert budget.used == 800 * KiB
        budget.release(800 * KiB)
        await asyncio.wait_for(budget.acquire(5 * MiB), 1)  # larger than everything: admitted alone
        cancelled = asyncio.create_task(budget.acquire(1))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        budget.release(5 * MiB)
        assert budget.used == 0 and budget.waited(0.0) == 0.0

    asyncio.run(main())


@pytest.mark.slow
def test_a_slow_reader_is_not_taken_for_a_stalled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Under memory pressure a client that reads a large response slowly, but steadily,
    keeps its connection; the ones that stopped are closed."""
    monkeypatch.setattr(app, "STALL_S", 0.15)
    monkeypatch.setattr(app, "_SWEEP_S", 0.02)
    limits = ServerLimits(fetch_max_bytes=6 * MiB, socket_request_max_bytes=2 * MiB, queued_max_request_bytes=10 * MiB)

    async def scenario(ctx: ServerContext, port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KiB)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(fetch_everything("data"))
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        assert size > 5 * MiB  # most of the response is still in the server
        stalled = []
        for _ in range(4):  # frames that stall, and frames that wait for memory
            _, stall = await asyncio.open_connection("127.0.0.1", port)
            stall.write(struct.pack(">i", 2 * MiB) + bytes(MiB))
            stalled.append(stall)
        got = 0
        async with asyncio.timeout(20):
            while got < size:  # about 1.6 MB/s: a 1 MiB piece takes longer than STALL_S
                piece = await reader.read(min(32 * KiB, size - got))
                assert piece, f"closed after {got} of {size} bytes"
                got += len(piece)
                await asyncio.sleep(0.02)
        assert not reader.at_eof()
        writer.close()
        for stall in stalled:
            stall.transport.abort()

    with caplog.at_level(logging.WARNING, logger="streamlab.server"):
        serve_in_process(tmp_path, scenario, limits)
    closed = [r.getMessage() for r in caplog.records if "closing the connection" in r.getMessage()]
    assert len(closed) >= 2 and all("holds 2097152 bytes" in m for m in closed), closed  # the stalled frames
