"""One client connection: its frames read, its requests answered in order, its memory counted.

A connection reads size-prefixed request frames and answers them in the order they
arrived, which is what Kafka guarantees and what pipelining clients (up to five Produce
requests in flight for an idempotent producer) rely on. A client may send requests ahead;
they wait in its socket until their turn. Requests are handled one at a time, except that
while a Produce is being stored (a :class:`~.context.Deferred` body) the next requests are
read and, if they are Produce requests too, queued behind it, up to :data:`MAX_DEFERRED`
answers pending: consecutive requests then share a storage turn and an fsync round, so a
producer sending many small requests (librdkafka sends one per ``linger.ms``) is not held
to two thread hand-offs and one fsync per request, one after another; anything else waits
for the Produce requests before it. What goes wrong stays with this connection:

* a frame size over ``socket.request.max.bytes`` (100 MiB), or over
  ``sasl.server.max.receive.size`` before SASL authentication, closes it, as Kafka does
  (what a frame that was read may close it for: :mod:`.dispatch`);
* a client that stops reading blocks only its own connection (writes wait for its socket
  buffer to drain), and one that vanishes mid-request just ends its connection;
* frames wait for the server's memory budget (:mod:`streamlab.server.limits`) before they
  are read, a response counts against it until the kernel has taken its last byte, and the
  next request is read only then; :attr:`Connection.moving` and :attr:`Connection.moved_at`
  tell the server's sweeper (:mod:`.app`) whether its client is still taking bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios
import traceback
from collections import deque
from dataclasses import dataclass, field

from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.dispatch import Response, respond
from streamlab.server.produce_lane import Lane
from streamlab.server.security import Session

log = logging.getLogger("streamlab.server")

IDLE_TIMEOUT_S = 600.0  # Kafka's connections.max.idle.ms
CLOSE_TIMEOUT_S = 2.0
# Produce requests of one connection whose fsync may still be running while the next is
# read: enough for a producer's burst of small requests to share one fsync round.
MAX_DEFERRED = 8
CHUNK = 1024 * 1024  # frames are read and responses written in pieces of this size
_SMALL_FRAME = 64 * 1024  # read at once; larger ones piece by piece, noting progress
SASL_MAX_RECEIVE_BYTES = 512 * 1024  # Kafka's sasl.server.max.receive.size: frames before authentication
_SIZE = struct.Struct(">i")
_API_KEY = struct.Struct(">h")  # a request header's first field
_PRODUCE = 0
_OUTQ: int | None = getattr(termios, "TIOCOUTQ", None)


def unsent_bytes(writer: asyncio.StreamWriter) -> int:
    """Bytes written and not yet taken by the client: in the transport's buffer and, where
    the OS tells (Linux: TIOCOUTQ), in the socket's send queue, which a slow reader drains
    steadily while the transport may wait long for room."""
    size = writer.transport.get_write_buffer_size()
    sock = writer.get_extra_info("socket")
    if sock is not None and _OUTQ is not None:
        with contextlib.suppress(OSError, ValueError):
            size += struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
    return size


async def _read_header(reader: asyncio.StreamReader) -> bytes:
    """A frame's size prefix; TimeoutError after a connection is idle for IDLE_TIMEOUT_S."""
    async with asyncio.timeout(IDLE_TIMEOUT_S):
        return await reader.readexactly(4)


def clear_frames(exc: BaseException | None) -> None:
    """Drop the local variables of the finished frames ``exc`` and its context went through."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


@dataclass(eq=False)
class Connection:
    """One client connection, from its first frame to its close."""

    host: str
    port: int
    writer: asyncio.StreamWriter
    ctx: ServerContext
    task: asyncio.Task[None] | None = None
    busy: bool = False  # a request has been read and is not yet answered
    held: int = 0  # bytes of the memory budget this connection holds (its frame, its response)
    moving: str = ""  # "reading" a frame or "writing" a response: waiting on the client
    moved_at: float = 0.0  # when the last byte of the current frame or response moved
    unsent: int = 0  # bytes of the response in the transport and the kernel when last looked
    session: Session = field(default_factory=Session)  # who the client is (SASL)
    lane: Lane = field(default_factory=Lane)  # where its Produce requests are stored, in order

    @property
    def peer(self) -> ConnectionInfo:
        """What a handler learns of this connection (each request adds its client id)."""
        return ConnectionInfo("", self.host, self.port, self.session, self.lane)

    async def serve(self, reader: asyncio.StreamReader) -> None:
        """Answer the client's requests in order until it leaves or the server stops
        (:class:`~.dispatch.Close` and connection errors end it early)."""
        # Deferred answers in request order: each is written before anything read after it.
        deferred: deque[asyncio.Future[Response | None]] = deque()
        header: asyncio.Future[bytes] | None = None
        try:
            while deferred or not self.ctx.shutting_down:
                if header is None:
                    header = asyncio.ensure_future(_read_header(reader))
                if deferred:  # write the oldest answer as soon as it is ready, or read on meanwhile
                    await asyncio.wait((header, deferred[0]), return_when=asyncio.FIRST_COMPLETED)
                    if deferred[0].done() or self.ctx.shutting_down:  # at shutdown: answer, read no more
                        await self._answer(deferred.popleft())
                        self.busy = bool(deferred)
                        continue
                (size,) = _SIZE.unpack(await header)
                header = None
                if not await self._serve_frame(reader, size, deferred):
                    return
        finally:
            pending = [f for f in (header, *deferred) if f is not None]
            for future in pending:
                future.cancel()
            # Retrieved, so that a cancelled read or a failed answer is not reported as lost.
            await asyncio.gather(*pending, return_exceptions=True)

    async def _serve_frame(
        self, reader: asyncio.StreamReader, size: int, deferred: deque[asyncio.Future[Response | None]]
    ) -> bool:
        """Read and answer (or defer) one request of ``size`` bytes; False: close the connection."""
        limit = self.ctx.limits.socket_request_max_bytes
        if size > SASL_MAX_RECEIVE_BYTES and self.ctx.security.sasl_enabled and not self.session.authenticated:
            log.warning(
                "%s:%d: a %d-byte request before SASL authentication (sasl.server.max.receive.size is %d); "
                "closing the connection", self.host, self.port, size, SASL_MAX_RECEIVE_BYTES,
            )  # fmt: skip
            return False
        if not 0 <= size <= limit:
            log.warning(
                "%s:%d: request size %d is outside 0..%d (socket.request.max.bytes); closing the connection",
                self.host, self.port, size, limit,
            )  # fmt: skip
            return False
        # Until the frame fits in the budget this socket is not read: the client's
        # sends wait (queued.max.request.bytes).
        await self.ctx.memory.acquire(size)
        self.held += size
        async with asyncio.timeout(IDLE_TIMEOUT_S):
            frame = await self._read_frame(reader, size)
        self.busy = True
        try:
            if size < 2 or _API_KEY.unpack_from(frame)[0] != _PRODUCE:
                # Anything but a Produce is handled once the Produce requests before it are
                # durable and answered (an EndTxn, a ListOffsets, ...), as if one at a time.
                while deferred:
                    await self._answer(deferred.popleft())
            answer = await respond(self.ctx, self.peer, frame)
            del frame
            self.give_back(size)
            if isinstance(answer, asyncio.Future):
                deferred.append(answer)
                # Past the bound (or at shutdown) the oldest is answered before reading on.
                while deferred and (len(deferred) >= MAX_DEFERRED or self.ctx.shutting_down):
                    await self._answer(deferred.popleft())
                return True
            while deferred:  # a Produce with acks=0 or 1: answered after those before it
                await self._answer(deferred.popleft())
            if answer is not None:
                await self._write(answer)
        finally:
            self.busy = bool(deferred)
        return True

    async def _answer(self, answer: asyncio.Future[Response | None]) -> None:
        response = await answer
        if response is not None:
            await self._write(response)

    async def _read_frame(self, reader: asyncio.StreamReader, size: int) -> bytes:
        """The frame, read in pieces joined at the end (a frame that never arrives takes
        only what was sent)."""
        loop = asyncio.get_running_loop()
        self.moving, self.moved_at = "reading", loop.time()
        try:
            if size <= _SMALL_FRAME:
                return await reader.readexactly(size)
            pieces, got = [], 0
            while got < size:
                piece = await reader.read(min(CHUNK, size - got))
                if not piece:
                    raise asyncio.IncompleteReadError(b"", size)
                pieces.append(piece)
                got += len(piece)
                self.moved_at = loop.time()
            return b"".join(pieces)  # bytes, as the parser wants them: one copy
        finally:
            self.moving = ""

    async def _write(self, response: Response) -> None:
        """Hand ``response`` to the kernel piece by piece; it counts against the memory
        budget until the last piece is taken, and only then is the next request read."""
        loop = asyncio.get_running_loop()
        parts = [response] if isinstance(response, bytes) else response
        size = sum(len(part) for part in parts)
        self.ctx.memory.take(size)
        self.held += size
        self.moving, self.moved_at = "writing", loop.time()
        try:
            for part in parts:
                view = memoryview(part)
                for start in range(0, len(view), CHUNK):
                    self.writer.write(view[start : start + CHUNK])
                    self.unsent = unsent_bytes(self.writer)
                    transport = self.writer.transport
                    # drain() waits for room, or raises if the client is gone; with nothing
                    # buffered and the connection up there is nothing to wait for
                    if transport.get_write_buffer_size() or transport.is_closing():
                        async with asyncio.timeout(IDLE_TIMEOUT_S):
                            await self.writer.drain()
                    self.moved_at = loop.time()
        finally:
            self.moving = ""
        self.give_back(size)

    def give_back(self, size: int) -> None:
        self.held -= size
        self.ctx.memory.release(size)

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def close(self) -> None:
        """Flush what was answered, but never wait long for a client that stopped reading."""
        writer = self.writer
        if writer.transport.get_write_buffer_size():
            writer.transport.abort()  # a response its client is not reading: drop it now
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.CancelledError):
            writer.transport.abort()
