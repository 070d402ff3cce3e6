"""The Kafka listener and the server's lifecycle: accepting connections, and serving a broker.

:class:`KafkaServer` listens on one socket and admits connections; each then lives in
:mod:`.connection` (frames read, answers written in request order, memory counted), and
its requests go through :mod:`.dispatch` to the handlers. Here, across connections:

* ``max.connections.per.ip`` refuses connections past it; TLS starts per connection, once
  it is admitted, with a deadline for its handshake;
* memory stays within Kafka's limits (:mod:`streamlab.server.limits`): while frames wait
  for memory, a connection that holds some and has moved no byte for :data:`STALL_S` is
  closed, so clients that stop reading cannot hold the server's memory; a closed
  connection's buffers are dropped at once;
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
import logging
import signal
import socket
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streamlab.broker import Broker
from streamlab.config import BrokerSettings
from streamlab.server.connection import Connection, clear_frames, unsent_bytes
from streamlab.server.context import ServerContext
from streamlab.server.dispatch import Close
from streamlab.server.limits import ServerLimits
from streamlab.server.memory import return_freed_memory
from streamlab.server.retention_schedule import DEFAULT_CHECK_INTERVAL_MS, RetentionSchedule, check_interval
from streamlab.server.security import Security

log = logging.getLogger("streamlab.server")

SHUTDOWN_GRACE_S = 10.0
# A client gets this long to finish the TLS handshake: connections in their handshake count
# against max.connections.per.ip, so a peer that never finishes cannot hold sockets for long.
TLS_HANDSHAKE_TIMEOUT_S = 10.0
WORKER_THREADS = 64
LISTEN_BACKLOG = 512  # a burst of connecting clients must not wait out SYN retries
STALL_S = 2.0  # no byte moved for this long, while others wait for memory: the connection is closed
_SWEEP_S = 0.5
# A connection that held this much (a large frame, read or half read) hands the freed memory
# back to the OS when it ends, after a short pause that lets a burst of closes go at once.
_TRIM_AFTER_BYTES = 16 * 1024 * 1024
_TRIM_DELAY_S = 0.1


class KafkaServer:
    """Serves one :class:`ServerContext` on one listening socket."""

    def __init__(self, ctx: ServerContext, host: str, port: int) -> None:
        self.ctx = ctx
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._per_ip: Counter[str] = Counter()
        self._refusing: set[str] = set()  # addresses at max.connections.per.ip, warned about once
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._trim: asyncio.TimerHandle | None = None

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
        conn = Connection(str(peer[0]), int(peer[1]), writer, self.ctx, asyncio.current_task())
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
        # a response is held (and counted) only until then (see Connection._write).
        # asyncio's TLS transport pauses at size >= high (TCP's at size > high): there 0 would
        # pause after every write and resume only on the next read, so it takes 1, the same.
        writer.transport.set_write_buffer_limits(high=1 if self.ctx.security.ssl_context else 0)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # small responses must not wait for Nagle
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections.add(conn)
        try:
            await conn.serve(reader)
        except (Close, ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.CancelledError) as exc:
            # (cancelled: shutdown, or closed for holding memory.) The exception's frames
            # hold this connection's frame and response, often in a reference cycle that
            # only the garbage collector would free: free them now.
            clear_frames(exc)
        finally:
            self._connections.discard(conn)
            self._forget(conn)
            held = conn.held
            conn.give_back(held)
            await conn.close()
            if held >= _TRIM_AFTER_BYTES:
                self._trim_soon()

    def _trim_soon(self) -> None:
        if self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(_TRIM_DELAY_S, self._trim_now)

    def _trim_now(self) -> None:
        self._trim = None
        return_freed_memory()

    async def _start_tls(self, conn: Connection, writer: asyncio.StreamWriter) -> None:
        ssl_context = self.ctx.security.ssl_context
        if ssl_context is not None:
            await writer.start_tls(ssl_context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)

    def _forget(self, conn: Connection) -> None:
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

    async def _sweep(self) -> None:
        """While frames wait for memory, close the connections that hold some and whose
        client has moved no byte for STALL_S (stopped reading, or stalled mid-frame)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_SWEEP_S)
            now = loop.time()
            for conn in self._connections:  # a slow reader still takes bytes: that is progress
                if conn.moving == "writing":
                    unsent = unsent_bytes(conn.writer)
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
                    conn.cancel()

    # shutdown ---------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop accepting, finish requests in progress, close every connection."""
        self._stopping = True
        self.ctx.shutting_down = True  # connections answer what they read, and read no more
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._trim is not None:
            self._trim.cancel()
        self.ctx.data.wake_all()  # long polls answer now
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE_S
        while any(c.busy for c in self._connections) and loop.time() < deadline:
            for conn in [c for c in self._connections if not c.busy]:
                conn.cancel()
            await asyncio.sleep(0.02)
        tasks = [c.task for c in self._connections if c.task is not None]
        for conn in list(self._connections):
            conn.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


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
