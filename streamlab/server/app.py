"""The asyncio TCP server: Kafka's framing, dispatch to the handlers, connection lifecycle.

Each connection reads size-prefixed request frames and answers them in the order they
arrived, which is what Kafka guarantees and what pipelining clients (up to five Produce
requests in flight for an idempotent producer) rely on. A client may send requests ahead;
they wait in its socket until their turn. Requests are handled one at a time, except that
while a Produce is being stored (a :class:`~.context.Deferred` body) the next requests are
read and, if they are Produce requests too, queued behind it, up to :data:`MAX_DEFERRED`
answers pending: consecutive requests then share a storage turn and an fsync round, so a
producer sending many small requests (librdkafka sends one per ``linger.ms``) is not held
to two thread hand-offs and one fsync per request, one after another; anything else waits
for the Produce requests before it. What goes wrong stays with one connection:

* a frame size over ``socket.request.max.bytes`` (100 MiB), a malformed frame, or an
  unsupported version of anything but ApiVersions closes that connection, as Kafka does;
  ApiVersions at an unknown version is answered with a v0 UNSUPPORTED_VERSION body that
  lists the supported ranges; an API this broker does not offer at all is answered with
  UNSUPPORTED_VERSION everywhere and a warning naming it (:mod:`.unsupported`), so its
  client fails at once instead of reconnecting and retrying;
* a client that stops reading blocks only its own connection (writes wait for its socket
  buffer to drain), and one that vanishes mid-request just ends its connection;
* memory stays within Kafka's limits (:mod:`streamlab.server.limits`): frames wait for the
  server's memory budget before they are read, a response counts against it until the
  kernel has taken its last byte, and the next request of a connection is read only then.
  While frames wait for memory, a connection that holds some and has moved no byte for
  :data:`STALL_S` is closed, so clients that stop reading cannot hold the server's memory;
  a closed connection's buffers are dropped at once. ``max.connections.per.ip`` refuses
  connections past it;
* retention and compaction run every ``log.retention.check.interval.ms``
  (:mod:`streamlab.server.retention_schedule`);
* blocking broker work runs in a thread pool, and long polls wait on an asyncio signal,
  so no request holds up the event loop.

SIGINT and SIGTERM stop accepting connections, let requests in progress finish (long
polls return early), close the connections and then the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
import socket
import struct
import termios
import threading
import traceback
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kio.schema.errors import ErrorCode

from streamlab.broker import Broker
from streamlab.config import BrokerSettings
from streamlab.protocol.framing import (
    API_NAMES,
    SUPPORTED_APIS,
    InvalidRequestError,
    ParsedRequest,
    ProtocolError,
    UnsupportedVersionError,
    api_versions_response,
    encode_response,
    encode_response_parts,
)
from streamlab.server.context import CloseConnection, ConnectionInfo, Deferred, ServerContext
from streamlab.server.handlers import HANDLERS
from streamlab.server.limits import ServerLimits
from streamlab.server.produce_lane import Lane
from streamlab.server.requests import parse
from streamlab.server.retention_schedule import DEFAULT_CHECK_INTERVAL_MS, RetentionSchedule, check_interval
from streamlab.server.security import Security, Session
from streamlab.server.unsupported import refusal

log = logging.getLogger("streamlab.server")

IDLE_TIMEOUT_S = 600.0  # Kafka's connections.max.idle.ms
SHUTDOWN_GRACE_S = 10.0
CLOSE_TIMEOUT_S = 2.0
# A client gets this long to finish the TLS handshake: connections in their handshake count
# against max.connections.per.ip, so a peer that never finishes cannot hold sockets for long.
TLS_HANDSHAKE_TIMEOUT_S = 10.0
WORKER_THREADS = 64
LISTEN_BACKLOG = 512  # a burst of connecting clients must not wait out SYN retries
STALL_S = 2.0  # no byte moved for this long, while others wait for memory: the connection is closed
_SWEEP_S = 0.5
# Produce requests of one connection whose fsync may still be running while the next is
# read: enough for a producer's burst of small requests to share one fsync round.
MAX_DEFERRED = 8
_CHUNK = 1024 * 1024  # frames are read and responses written in pieces of this size
_SMALL_FRAME = 64 * 1024  # read at once; larger ones piece by piece, noting progress
_API_VERSIONS = 18
SASL_MAX_RECEIVE_BYTES = 512 * 1024  # Kafka's sasl.server.max.receive.size: frames before authentication
_BEFORE_AUTHENTICATION = frozenset({_API_VERSIONS, 17, 36})  # + SaslHandshake, SaslAuthenticate
_SIZE = struct.Struct(">i")
_API_KEY = struct.Struct(">h")  # a request header's first field
_PRODUCE = 0
_OUTQ: int | None = getattr(termios, "TIOCOUTQ", None)
_Response = bytes | list[bytes]  # one buffer, or parts sent one after another
_Answer = _Response | None | asyncio.Future[_Response | None]  # a response, none, or one being completed


class _Close(Exception):
    """End this connection (the reason was already logged)."""


@dataclass(eq=False)
class _Connection:
    host: str
    port: int
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None
    busy: bool = False  # a request has been read and is not yet answered
    held: int = 0  # bytes of the memory budget this connection holds (its frame, its response)
    moving: str = ""  # "reading" a frame or "writing" a response: waiting on the client
    moved_at: float = 0.0  # when the last byte of the current frame or response moved
    unsent: int = 0  # bytes of the response in the transport and the kernel when last looked
    session: Session = field(default_factory=Session)  # who the client is (SASL)
    lane: Lane = field(default_factory=Lane)  # where its Produce requests are stored, in order


def _unsent(writer: asyncio.StreamWriter) -> int:
    """Bytes written and not yet taken by the client: in the transport's buffer and, where
    the OS tells (Linux: TIOCOUTQ), in the socket's send queue, which a slow reader drains
    steadily while the transport may wait long for room."""
    size = writer.transport.get_write_buffer_size()
    sock = writer.get_extra_info("socket")
    if sock is not None and _OUTQ is not None:
        with contextlib.suppress(OSError, ValueError):
            size += struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
    return size


def _clear_frames(exc: BaseException | None) -> None:
    """Drop the local variables of the finished frames ``exc`` and its context went through."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


def _not_offered(exc: ProtocolError) -> bool:
    """A well-formed header naming an API this broker does not serve at all."""
    return (
        isinstance(exc, InvalidRequestError)
        and exc.api_key is not None
        and exc.api_version is not None
        and exc.correlation_id is not None
        and exc.api_key not in SUPPORTED_APIS
    )


class KafkaServer:
    """Serves one :class:`ServerContext` on one listening socket."""

    def __init__(self, ctx: ServerContext, host: str, port: int) -> None:
        self.ctx = ctx
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._per_ip: Counter[str] = Counter()
        self._refusing: set[str] = set()  # addresses at max.connections.per.ip, warned about once
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound address (the port is chosen by the OS if 0)."""
        # TLS starts per connection in _accept, after max.connections.per.ip admitted it:
        # a listener with ssl= would handshake with every peer before counting it.
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True, backlog=LISTEN_BACKLOG
        )
        bound = self._server.sockets[0].getsockname()
        self.port = bound[1]
        self._sweeper = asyncio.create_task(self._sweep(), name="streamlab-memory-sweeper")
        return bound[0], bound[1]

    # connections ------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        conn = _Connection(str(peer[0]), int(peer[1]), writer, asyncio.current_task())
        if self._stopping:
            writer.transport.abort()
            return
        if not self._admit_from(conn.host):
            writer.transport.abort()
            return
        try:
            await self._start_tls(conn, writer)
        except (OSError, TimeoutError, asyncio.CancelledError) as exc:  # ssl.SSLError is an OSError
            log.info("%s:%d: TLS handshake failed: %s", conn.host, conn.port, exc)
            self._forget(conn)
            writer.transport.abort()
            return
        # A high-water mark of 0 makes drain() wait until the kernel has every byte written:
        # a response is held (and counted) only until then (see _write).
        # asyncio's TLS transport pauses at size >= high (TCP's at size > high): there 0 would
        # pause after every write and resume only on the next read, so it takes 1, the same.
        writer.transport.set_write_buffer_limits(high=1 if self.ctx.security.ssl_context else 0)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # small responses must not wait for Nagle
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections.add(conn)
        try:
            await self._serve(conn, reader)
        except (_Close, ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.CancelledError) as exc:
            # (cancelled: shutdown, or closed for holding memory.) The exception's frames
            # hold this connection's frame and response, often in a reference cycle that
            # only the garbage collector would free: free them now.
            _clear_frames(exc)
        finally:
            self._connections.discard(conn)
            self._forget(conn)
            self._give_back(conn, conn.held)
            await self._close(writer)

    async def _start_tls(self, conn: _Connection, writer: asyncio.StreamWriter) -> None:
        ssl_context = self.ctx.security.ssl_context
        if ssl_context is not None:
            await writer.start_tls(ssl_context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)

    def _forget(self, conn: _Connection) -> None:
        """Give back ``conn``'s place under max.connections.per.ip."""
        self._per_ip[conn.host] -= 1
        if self._per_ip[conn.host] <= 0:
            del self._per_ip[conn.host]

    def _admit_from(self, host: str) -> bool:
        """Count a connection from ``host``, or refuse it past max.connections.per.ip."""
        limit = self.ctx.limits.max_connections_per_ip
        if self._per_ip[host] >= limit:
            if host not in self._refusing:
                self._refusing.add(host)
                log.warning("%s: %d connections (max.connections.per.ip); closing new ones until one ends",
                            host, limit)  # fmt: skip
            return False
        self._refusing.discard(host)
        self._per_ip[host] += 1
        return True

    def _give_back(self, conn: _Connection, size: int) -> None:
        conn.held -= size
        self.ctx.memory.release(size)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        """Flush what was answered, but never wait long for a client that stopped reading."""
        if writer.transport.get_write_buffer_size():
            writer.transport.abort()  # a response its client is not reading: drop it now
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.CancelledError):
            writer.transport.abort()

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        # Deferred answers in request order: each is written before anything read after it.
        deferred: deque[asyncio.Future[_Response | None]] = deque()
        header: asyncio.Future[bytes] | None = None
        try:
            while deferred or not self._stopping:
                if header is None:
                    header = asyncio.ensure_future(asyncio.wait_for(reader.readexactly(4), IDLE_TIMEOUT_S))
                if deferred:  # write the oldest answer as soon as it is ready, or read on meanwhile
                    await asyncio.wait((header, deferred[0]), return_when=asyncio.FIRST_COMPLETED)
                    if deferred[0].done() or self._stopping:  # at shutdown: answer, read no more
                        await self._answer(conn, deferred.popleft())
                        conn.busy = bool(deferred)
                        continue
                (size,) = _SIZE.unpack(await header)
                header = None
                if not await self._serve_frame(conn, reader, size, deferred):
                    return
        finally:
            pending = [f for f in (header, *deferred) if f is not None]
            for future in pending:
                future.cancel()
            # Retrieved, so that a cancelled read or a failed answer is not reported as lost.
            await asyncio.gather(*pending, return_exceptions=True)

    async def _serve_frame(
        self,
        conn: _Connection,
        reader: asyncio.StreamReader,
        size: int,
        deferred: deque[asyncio.Future[_Response | None]],
    ) -> bool:
        """Read and answer (or defer) one request of ``size`` bytes; False: close the connection."""
        limit = self.ctx.limits.socket_request_max_bytes
        if size > SASL_MAX_RECEIVE_BYTES and self.ctx.security.sasl_enabled and not conn.session.authenticated:
            log.warning(
                "%s:%d: a %d-byte request before SASL authentication (sasl.server.max.receive.size is %d); "
                "closing the connection", conn.host, conn.port, size, SASL_MAX_RECEIVE_BYTES,
            )  # fmt: skip
            return False
        if not 0 <= size <= limit:
            log.warning(
                "%s:%d: request size %d is outside 0..%d (socket.request.max.bytes); closing the connection",
                conn.host, conn.port, size, limit,
            )  # fmt: skip
            return False
        # Until the frame fits in the budget this socket is not read: the client's
        # sends wait (queued.max.request.bytes).
        await self.ctx.memory.acquire(size)
        conn.held += size
        frame = await asyncio.wait_for(self._read_frame(conn, reader, size), IDLE_TIMEOUT_S)
        conn.busy = True
        try:
            if size < 2 or _API_KEY.unpack_from(frame)[0] != _PRODUCE:
                # Anything but a Produce is handled once the Produce requests before it are
                # durable and answered (an EndTxn, a ListOffsets, ...), as if one at a time.
                while deferred:
                    await self._answer(conn, deferred.popleft())
            answer = await self._respond(conn, frame)
            del frame
            self._give_back(conn, size)
            if isinstance(answer, asyncio.Future):
                deferred.append(answer)
                # Past the bound (or at shutdown) the oldest is answered before reading on.
                while deferred and (len(deferred) >= MAX_DEFERRED or self._stopping):
                    await self._answer(conn, deferred.popleft())
                return True
            while deferred:  # a Produce with acks=0 or 1: answered after those before it
                await self._answer(conn, deferred.popleft())
            if answer is not None:
                await self._write(conn, answer)
        finally:
            conn.busy = bool(deferred)
        return True

    async def _answer(self, conn: _Connection, answer: asyncio.Future[_Response | None]) -> None:
        response = await answer
        if response is not None:
            await self._write(conn, response)

    @staticmethod
    async def _read_frame(conn: _Connection, reader: asyncio.StreamReader, size: int) -> bytes:
        """The frame, read in pieces joined at the end (a frame that never arrives takes
        only what was sent)."""
        loop = asyncio.get_running_loop()
        conn.moving, conn.moved_at = "reading", loop.time()
        try:
            if size <= _SMALL_FRAME:
                return await reader.readexactly(size)
            pieces, got = [], 0
            while got < size:
                piece = await reader.read(min(_CHUNK, size - got))
                if not piece:
                    raise asyncio.IncompleteReadError(b"", size)
                pieces.append(piece)
                got += len(piece)
                conn.moved_at = loop.time()
            return b"".join(pieces)  # bytes, as the parser wants them: one copy
        finally:
            conn.moving = ""

    async def _write(self, conn: _Connection, response: _Response) -> None:
        """Hand ``response`` to the kernel piece by piece; it counts against the memory
        budget until the last piece is taken, and only then is the next request read."""
        loop = asyncio.get_running_loop()
        parts = [response] if isinstance(response, bytes) else response
        size = sum(len(part) for part in parts)
        self.ctx.memory.take(size)
        conn.held += size
        conn.moving, conn.moved_at = "writing", loop.time()
        try:
            for part in parts:
                view = memoryview(part)
                for start in range(0, len(view), _CHUNK):
                    conn.writer.write(view[start : start + _CHUNK])
                    conn.unsent = _unsent(conn.writer)
                    await asyncio.wait_for(conn.writer.drain(), IDLE_TIMEOUT_S)
                    conn.moved_at = loop.time()
        finally:
            conn.moving = ""
        self._give_back(conn, size)

    async def _sweep(self) -> None:
        """While frames wait for memory, close the connections that hold some and whose
        client has moved no byte for STALL_S (stopped reading, or stalled mid-frame)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_SWEEP_S)
            now = loop.time()
            for conn in self._connections:  # a slow reader still takes bytes: that is progress
                if conn.moving == "writing":
                    unsent = _unsent(conn.writer)
                    if unsent < conn.unsent:
                        conn.moved_at = now
                    conn.unsent = unsent
            if self.ctx.memory.waited(now) < STALL_S:
                continue
            for conn in list(self._connections):
                if conn.held and conn.moving and now - conn.moved_at >= STALL_S:
                    log.warning(
                        "%s:%d: closing the connection: it holds %d bytes and its client has %s none for %.0fs "
                        "while requests wait for memory (queued.max.request.bytes)",
                        conn.host, conn.port, conn.held, "sent" if conn.moving == "reading" else "read",
                        now - conn.moved_at,
                    )  # fmt: skip
                    conn.writer.transport.abort()
                    self._cancel(conn)

    async def _respond(self, conn: _Connection, frame: bytes) -> _Answer:
        try:
            request = parse(frame)
        except UnsupportedVersionError as exc:
            if exc.api_key == _API_VERSIONS and exc.correlation_id is not None:
                body = api_versions_response(0, error_code=ErrorCode.unsupported_version)
                return encode_response(_API_VERSIONS, 0, exc.correlation_id, body)
            log.info("%s:%d: %s; closing the connection", conn.host, conn.port, exc)
            raise _Close from None
        except ProtocolError as exc:
            if _not_offered(exc) and self._admitted(conn, exc.api_key or 0):  # answered: clients fail at once
                assert exc.api_key is not None and exc.api_version is not None and exc.correlation_id is not None
                refused = refusal(exc.api_key, exc.api_version, exc.correlation_id, f"{conn.host}:{conn.port}")
                if refused is not None:
                    return refused
                raise _Close from None
            log.info("%s:%d: %s; closing the connection", conn.host, conn.port, exc)
            log.debug("the frame began with %s", frame[:256].hex())
            raise _Close from None
        handler = HANDLERS.get(request.api_key)
        if handler is None:
            refused = refusal(request.api_key, request.api_version, request.correlation_id, f"{conn.host}:{conn.port}")
            if refused is not None and self._admitted(conn, request.api_key):
                return refused
            raise _Close
        if not self._admitted(conn, request.api_key):
            raise _Close
        info = ConnectionInfo(request.client_id or "", conn.host, conn.port, conn.session, conn.lane)
        return await self._encoded(conn, request, handler(self.ctx, request, info))

    async def _encoded(self, conn: _Connection, request: ParsedRequest, body: Awaitable[Any]) -> _Answer:
        """The handler's answer to ``request``, encoded; a Deferred body as a future of it."""
        try:
            answer = await body
            if isinstance(answer, Deferred):
                return asyncio.ensure_future(self._completed(conn, request, answer.body))
            if answer is None:
                return None
            return encode_response_parts(request.api_key, request.api_version, request.correlation_id, answer)
        except CloseConnection as exc:
            log.info("%s:%d: %s; closing the connection", conn.host, conn.port, exc)
            raise _Close from None
        except Exception:
            # A bug, not the client's fault: Kafka answers UNKNOWN_SERVER_ERROR, which needs
            # a per-API error body; closing makes every client retry on a new connection.
            log.exception("%s:%d: %s v%d failed", conn.host, conn.port,
                          API_NAMES[request.api_key], request.api_version)  # fmt: skip
            raise _Close from None

    async def _completed(self, conn: _Connection, request: ParsedRequest, body: Awaitable[Any]) -> _Response | None:
        answer = await self._encoded(conn, request, body)
        assert not isinstance(answer, asyncio.Future), "a Deferred body is the complete answer"
        return answer

    def _admitted(self, conn: _Connection, api_key: int) -> bool:
        """With SASL on, only the handshake is served before authentication (Kafka closes too)."""
        session = conn.session
        if not self.ctx.security.sasl_enabled or session.authenticated:
            return True
        if session.failed:
            log.info("%s:%d: request after failed SASL authentication; closing the connection", conn.host, conn.port)
            return False
        if api_key in _BEFORE_AUTHENTICATION:
            return True
        log.warning("%s:%d: %s before SASL authentication; closing the connection",
                    conn.host, conn.port, API_NAMES.get(api_key, api_key))  # fmt: skip
        return False

    # shutdown ---------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop accepting, finish requests in progress, close every connection."""
        self._stopping = True
        self.ctx.shutting_down = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
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
    security: Security | None = None,
    limits: ServerLimits | None = None,
    log_retention_check_interval_ms: int = DEFAULT_CHECK_INTERVAL_MS,
    ready: Callable[[str, int, str | None], object] | None = None,
    schema_registry_port: int | None = None,
) -> None:
    """Serve ``broker`` until SIGINT/SIGTERM (or ``stop`` is set). Does not close the broker.

    ``schema_registry_port``: also serve Confluent's Schema Registry REST API on ``host``
    at that port (:mod:`streamlab.server.registry_http`; 0 picks one).

    ``ready`` is called with the advertised host and port, and the registry's URL (None
    without one), once connections are accepted.
    Signals are handled only when this runs in the main thread (``Lab.serve`` runs it in
    another, where only ``stop`` ends it).

    ``limits`` bound what clients can make the server hold (Kafka's ``fetch.max.bytes``,
    ``socket.request.max.bytes``, ``queued.max.request.bytes``, ``max.connections.per.ip``);
    retention and compaction run every ``log_retention_check_interval_ms``.
    """
    schedule = RetentionSchedule(broker, interval_ms=log_retention_check_interval_ms)
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="streamlab-io")
    loop.set_default_executor(executor)
    stop = stop or asyncio.Event()
    # add_signal_handler works only in the main thread
    signals = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    ctx = ServerContext(
        broker, advertised_host or host, port, security=security or Security(), limits=limits or ServerLimits()
    )
    server = KafkaServer(ctx, host, port)
    housekeeping: asyncio.Task[None] | None = None
    listeners = contextlib.AsyncExitStack()  # optional listeners beside Kafka's: the Schema Registry
    registry_port: int | None = None
    try:
        bound_host, bound_port = await server.start()
        housekeeping = asyncio.create_task(schedule.run(), name="streamlab-retention")
        if schema_registry_port is not None:
            from streamlab.server.registry_http import start_registry  # aiohttp loads only when asked for

            registry_port = await start_registry(listeners, broker, host, schema_registry_port)
        if not advertised_host and bound_host in ("0.0.0.0", "::"):
            ctx.advertised_host = socket.getfqdn()
        ctx.advertised_port = bound_port
        # in the lock file: the CLI on this directory then reads and decodes through both
        registry_url = None if registry_port is None else f"http://{ctx.advertised_host}:{registry_port}"
        broker.advertise(f"kafka://{ctx.advertised_host}:{ctx.advertised_port}", registry_url)
        log.info(
            "ready: serving %s on %s:%d, advertised as %s:%d (%s)",
            broker.data_dir, bound_host, bound_port, ctx.advertised_host, ctx.advertised_port,
            ctx.security.protocol,
        )  # fmt: skip
        if ready is not None:
            ready(ctx.advertised_host, ctx.advertised_port, registry_url)
        await stop.wait()
        log.info("stopping: finishing requests in progress")
        await server.stop()
    finally:
        await listeners.aclose()
        if housekeeping is not None:
            housekeeping.cancel()  # a round already in its thread finishes before the shutdown below
            await asyncio.gather(housekeeping, return_exceptions=True)
        for sig in signals:
            loop.remove_signal_handler(sig)
        # Handlers may still be in worker threads (cancelled requests): wait for them
        # before anything they use is closed. Blocking is fine: nothing is served any more.
        executor.shutdown(wait=True)
        ctx.close()
        if not broker.closed:  # the broker stays open (Lab.serve): nobody serves it any more
            broker.advertise("")


def serve(
    data_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 9092,
    advertised_host: str | None = None,
    security: Security | None = None,
    limits: ServerLimits | None = None,
    log_retention_check_interval_ms: int = DEFAULT_CHECK_INTERVAL_MS,
    settings: BrokerSettings | None = None,
    schema_registry_port: int | None = None,
) -> None:
    """Open the broker in ``data_dir`` and serve it until SIGINT/SIGTERM (options: see :func:`run`;
    ``settings``: auto.create.topics.enable and num.partitions)."""
    check_interval(log_retention_check_interval_ms)  # before the directory is opened
    broker = Broker(data_dir, settings=settings)
    try:
        interval_ms = log_retention_check_interval_ms
        main = run(broker, host=host, port=port, advertised_host=advertised_host, security=security, limits=limits,
                   log_retention_check_interval_ms=interval_ms,
                   schema_registry_port=schema_registry_port)  # fmt: skip
        asyncio.run(main)
    finally:
        broker.close()
        log.info("stopped: %s closed", broker.data_dir)
