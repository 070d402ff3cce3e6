"""What every request handler gets: the broker, the advertised address, shared server state.

Handlers (``streamlab/server/handlers/<api>.py``) have the signature
``async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo)`` and
return the kio response body for ``request.api_version`` (or None when the request gets
no response, as a Produce with ``acks=0``), or a :class:`Deferred` body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from streamlab.broker import Broker
from streamlab.broker.producer_state import ProducerStates
from streamlab.broker.transaction_registry import shared_coordinator
from streamlab.broker.transactions import TransactionCoordinator
from streamlab.server.limits import ServerLimits
from streamlab.server.memory import MemoryBudget
from streamlab.server.produce_lane import Lane
from streamlab.server.security import Operation, ResourceType, Security, Session
from streamlab.server.security.acls import Authorizer
from streamlab.server.share_sessions import ShareSessions
from streamlab.server.topic_ids import TopicIds

log = logging.getLogger(__name__)


@dataclass
class ConnectionInfo:
    """The peer of one client connection."""

    client_id: str
    host: str
    port: int
    session: Session = field(default_factory=Session)  # shared by the connection's requests
    lane: Lane = field(default_factory=Lane)  # its Produce requests' way to storage, likewise


class CloseConnection(Exception):
    """Raised by a handler to close the connection without answering.

    Kafka does this when a Produce with ``acks=0`` fails: the client gets no response to
    learn the error from, so the closed connection tells it to refresh its metadata.
    """


@dataclass(frozen=True, slots=True)
class Deferred:
    """A response body still being completed, whose wait may overlap the connection's next
    requests: a Produce returns it once its records are queued on the connection's lane
    (:mod:`streamlab.server.produce_lane`). The server reads and queues the connection's
    next Produce meanwhile, so consecutive requests share a turn and an fsync round instead
    of one each, and still answers in request order, as Kafka requires."""

    body: Awaitable[Any]


@dataclass(frozen=True, slots=True)
class Encoded:
    """A response a handler wrote itself (size prefix, header and body), sent as it is:
    Produce's, whose generic encoding cost the event loop more than the rest of it."""

    frame: bytes


class DataSignal:
    """Wakes waiting coroutines when the broker appends data, without blocking the loop.

    The broker signals appends on a ``threading.Condition`` (``broker.data_arrived``). One
    watcher thread waits on it for the whole server and bumps :attr:`generation` on the
    event loop; a long-polling Fetch notes the generation, checks for data, and waits only
    if the generation has not moved since, so no append can slip between check and wait.
    """

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def _start(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop:
            self._loop, self._event = loop, asyncio.Event()
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="streamlab-data-signal", daemon=True)
            self._thread.start()
        return self._event

    def _watch(self) -> None:
        condition = self._broker.data_arrived
        # Holding the condition's lock except inside wait() means a notify can only happen
        # while this thread is waiting: none is lost between two waits.
        with condition:
            while not self._closed:
                # The timeout only lets close() be noticed if nobody notifies.
                if condition.wait(timeout=1.0) and not self._closed and self._loop is not None:
                    try:
                        self._loop.call_soon_threadsafe(self.wake_all)
                    except RuntimeError:  # the loop is closed: the server is going away
                        return

    def wake_all(self) -> None:
        """Wake every waiter (also used at shutdown so long polls return at once)."""
        self.generation += 1
        if self._event is not None:
            self._event.set()
            self._event = asyncio.Event()

    async def wait(self, since: int, timeout: float) -> None:
        """Return when the generation differs from ``since``, or after ``timeout`` seconds."""
        event = self._start()
        if self.generation != since or timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._broker.notify_data()
            self._thread.join(timeout=5)
            self._thread = None


def _cluster_id(broker: Broker) -> str:
    # Kafka cluster ids are 22-character URL-safe base64 UUIDs; deriving it from the data
    # directory keeps it stable across restarts without storing anything.
    raw = uuid.uuid5(uuid.NAMESPACE_URL, f"streamlab:{broker.data_dir}").bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class ServerContext:
    """State shared by every connection of one server."""

    broker: Broker
    advertised_host: str
    advertised_port: int
    node_id: int = 0
    cluster_id: str = ""
    security: Security = field(default_factory=Security)
    limits: ServerLimits = field(default_factory=ServerLimits)
    memory: MemoryBudget = field(init=False, repr=False)  # queued.max.request.bytes
    authorizer: Authorizer | None = field(init=False, repr=False)  # None: authorization is off
    producers: ProducerStates = field(init=False, repr=False)
    transactions: TransactionCoordinator = field(init=False, repr=False)
    data: DataSignal = field(init=False, repr=False)
    topic_ids: TopicIds = field(init=False, repr=False)
    share_sessions: ShareSessions = field(init=False, repr=False)
    shutting_down: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not self.cluster_id:
            self.cluster_id = _cluster_id(self.broker)
        self.producers = ProducerStates(self.broker)
        # Opening completes transactions a crash left open (markers written): before serving.
        # The broker's one coordinator: an in-process Lab.serve shares the embedded API's.
        self.transactions = shared_coordinator(
            self.broker, new_producer_id=self.producers.new_producer_id, partition_lock=self.producers.partition
        )
        self.transactions.start_timer()
        self.data = DataSignal(self.broker)
        self.topic_ids = TopicIds(self.broker, self.cluster_id)
        self.share_sessions = ShareSessions()
        self.memory = MemoryBudget(self.limits.queued_max_request_bytes)
        self.authorizer = self.security.authorizer(self.broker.data_dir)

    def authorize(self, conn: ConnectionInfo, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        """Whether the connection's principal may do ``operation`` on the resource.

        Always True when authorization is off (no SASL configured), as before security existed.
        """
        if self.authorizer is None:
            return True
        return self.authorizer.authorize(conn.session.principal, conn.host, operation, resource_type, name)

    def close(self) -> None:
        """Stop the background parts (the broker itself is closed by its owner)."""
        self.data.close()
        self.transactions.close()
        self.producers.close()
