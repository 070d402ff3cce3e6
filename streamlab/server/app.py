"""The asyncio TCP server: Kafka's framing, dispatch to the handlers, connection lifecycle.

Each connection reads size-prefixed request frames and answers them one at a time, in
the order they arrived, which is what Kafka guarantees and what pipelining clients (up to
five Produce requests in flight for an idempotent producer) rely on. A client may send
requests ahead; they wait in its socket until their turn. What goes wrong stays with one
connection:

* a frame size over ``socket.request.max.bytes`` (100 MiB), a malformed frame, an API
  key this broker does not serve, or an unsupported version of anything but ApiVersions
  closes that connection, as Kafka does; ApiVersions at an unknown version is answered
  with a v0 UNSUPPORTED_VERSION body that lists the supported ranges;
* a client that stops reading blocks only its own connection (writes wait for its socket
  buffer to drain), and one that vanishes mid-request just ends its connection;
* blocking broker work runs in a thread pool, and long polls wait on an asyncio signal,
  so no request holds up the event loop.

SIGINT and SIGTERM stop accepting connections, let requests in progress finish (long
polls return early), close the connections and then the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kio.schema.errors import ErrorCode

from streamlab.broker import Broker
from streamlab.protocol.framing import (
    API_NAMES,
    ProtocolError,
    UnsupportedVersionError,
    api_versions_response,
    encode_response,
)
from streamlab.server.context import CloseConnection, ConnectionInfo, ServerContext
from streamlab.server.handlers import HANDLERS
from streamlab.server.requests import parse

log = logging.getLogger("streamlab.server")

MAX_REQUEST_BYTES = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes
IDLE_TIMEOUT_S = 600.0  # Kafka's connections.max.idle.ms
SHUTDOWN_GRACE_S = 10.0
CLOSE_TIMEOUT_S = 2.0
WORKER_THREADS = 64
LISTEN_BACKLOG = 512  # a burst of connecting clients must not wait out SYN retries
_API_VERSIONS = 18
_SIZE = struct.Struct(">i")


class _Close(Exception):
    """End this connection (the reason was already logged)."""


@dataclass(eq=False)
class _Connection:
    host: str
    port: int
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None
    busy: bool = False  # a request has been read and is not yet answered


class KafkaServer:
    """Serves one :class:`ServerContext` on one listening socket."""

    def __init__(self, ctx: ServerContext, host: str, port: int) -> None:
        self.ctx = ctx
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._stopping = False

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound address (the port is chosen by the OS if 0)."""
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True, backlog=LISTEN_BACKLOG
        )
        bound = self._server.sockets[0].getsockname()
        self.port = bound[1]
        return bound[0], bound[1]

    # connections ------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        conn = _Connection(str(peer[0]), int(peer[1]), writer, asyncio.current_task())
        if self._stopping:
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # small responses must not wait for Nagle
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections.add(conn)
        try:
            await self._serve(conn, reader)
        except (_Close, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # shutdown
        finally:
            self._connections.discard(conn)
            await self._close(writer)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        """Flush what was answered, but never wait long for a client that stopped reading."""
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.CancelledError):
            writer.transport.abort()

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        while not self._stopping:
            (size,) = _SIZE.unpack(await asyncio.wait_for(reader.readexactly(4), IDLE_TIMEOUT_S))
            if not 0 <= size <= MAX_REQUEST_BYTES:
                log.warning(
                    "%s:%d: request size %d is outside 0..%d (socket.request.max.bytes); closing the connection",
                    conn.host, conn.port, size, MAX_REQUEST_BYTES,
                )  # fmt: skip
                return
            frame = await asyncio.wait_for(reader.readexactly(size), IDLE_TIMEOUT_S)
            conn.busy = True
            try:
                response = await self._respond(conn, frame)
                if response is not None:
                    conn.writer.write(response)
                    await asyncio.wait_for(conn.writer.drain(), IDLE_TIMEOUT_S)
            finally:
                conn.busy = False

    async def _respond(self, conn: _Connection, frame: bytes) -> bytes | None:
        try:
            request = parse(frame)
        except UnsupportedVersionError as exc:
            if exc.api_key == _API_VERSIONS and exc.correlation_id is not None:
                body = api_versions_response(0, error_code=ErrorCode.unsupported_version)
                return encode_response(_API_VERSIONS, 0, exc.correlation_id, body)
            log.info("%s:%d: %s; closing the connection", conn.host, conn.port, exc)
            raise _Close from None
        except ProtocolError as exc:
            log.info("%s:%d: %s; closing the connection", conn.host, conn.port, exc)
            log.debug("the frame began with %s", frame[:256].hex())
            raise _Close from None
        handler = HANDLERS.get(request.api_key)
        if handler is None:
            log.warning("%s:%d: no handler for %s; closing the connection",
                        conn.host, conn.port, API_NAMES.get(request.api_key, request.api_key))  # fmt: skip
            raise _Close
        info = ConnectionInfo(request.client_id or "", conn.host, conn.port)
        try:
            body = await handler(self.ctx, request, info)
            if body is None:
                return None
            return encode_response(request.api_key, request.api_version, request.correlation_id, body)
        except CloseConnection as exc:
            log.info("%s:%d: %s; closing the connection", conn.host, conn.port, exc)
            raise _Close from None
        except Exception:
            # A bug, not the client's fault: Kafka answers UNKNOWN_SERVER_ERROR, which needs
            # a per-API error body; closing makes every client retry on a new connection.
            log.exception("%s:%d: %s v%d failed", conn.host, conn.port,
                          API_NAMES[request.api_key], request.api_version)  # fmt: skip
            raise _Close from None

    # shutdown ---------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop accepting, finish requests in progress, close every connection."""
        self._stopping = True
        self.ctx.shutting_down = True
        if self._server is not None:
            self._server.close()
        self.ctx.data.wake_all()  # long polls answer now
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE_S
        while any(c.busy for c in self._connections) and loop.time() < deadline:
            for conn in [c for c in self._connections if not c.busy]:
                self._cancel(conn)
            await asyncio.sleep(0.02)
        tasks = [c.task for c in self._connections if c.task is not None]
        for conn in list(self._connections):
            self._cancel(conn)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @staticmethod
    def _cancel(conn: _Connection) -> None:
        if conn.task is not None and not conn.task.done():
            conn.task.cancel()


async def run(
    broker: Broker,
    *,
    host: str = "127.0.0.1",
    port: int = 9092,
    advertised_host: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``broker`` until SIGINT/SIGTERM (or ``stop`` is set). Does not close the broker."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="streamlab-io")
    loop.set_default_executor(executor)
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ctx = ServerContext(broker, advertised_host or host, port)
    server = KafkaServer(ctx, host, port)
    try:
        bound_host, bound_port = await server.start()
        if not advertised_host and bound_host in ("0.0.0.0", "::"):
            ctx.advertised_host = socket.getfqdn()
        ctx.advertised_port = bound_port
        broker.advertise(f"kafka://{ctx.advertised_host}:{ctx.advertised_port}")
        log.info(
            "ready: serving %s on %s:%d, advertised as %s:%d",
            broker.data_dir, bound_host, bound_port, ctx.advertised_host, ctx.advertised_port,
        )  # fmt: skip
        await stop.wait()
        log.info("stopping: finishing requests in progress")
        await server.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        # Handlers may still be in worker threads (cancelled requests): wait for them
        # before anything they use is closed. Blocking is fine: nothing is served any more.
        executor.shutdown(wait=True)
        ctx.close()


def serve(
    data_dir: str | Path, *, host: str = "127.0.0.1", port: int = 9092, advertised_host: str | None = None
) -> None:
    """Open the broker in ``data_dir`` and serve it until SIGINT/SIGTERM."""
    broker = Broker(data_dir)
    try:
        asyncio.run(run(broker, host=host, port=port, advertised_host=advertised_host))
    finally:
        broker.close()
        log.info("stopped: %s closed", broker.data_dir)
