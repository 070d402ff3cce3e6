"""The Kafka protocol endpoint of a broker this process already has open (``Lab.serve``).

A notebook holds its data directory's lock, so a second process cannot open it, and a
``streamlab serve`` started by hand would be locked out too. Instead :func:`acquire` runs
the same server (:func:`streamlab.server.app.run`) on the same :class:`Broker` object in
a background thread with its own event loop: any Kafka library, in this process or
another, then reads and writes the notebook's own directory while the notebook's
consumers, replays and SQL keep working beside it.

One endpoint per broker: two Labs on one directory share the broker (see
:mod:`streamlab.client.backend`) and so share its endpoint, which stops when the last
Lab that asked for it lets go (:func:`release`). Two servers on one broker would each
run a transaction coordinator and producer-id state of their own over the same logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from streamlab.broker import Broker
from streamlab.errors import ConfigError, OperationTimeoutError
from streamlab.server.app import SHUTDOWN_GRACE_S, run
from streamlab.server.connection import CLOSE_TIMEOUT_S

log = logging.getLogger("streamlab.server")

START_TIMEOUT_S = 30.0
# Requests in progress get the server's grace period to finish; then the thread must end.
STOP_TIMEOUT_S = SHUTDOWN_GRACE_S + CLOSE_TIMEOUT_S + 5.0

__all__ = ["Endpoint", "acquire", "release"]


class Endpoint:
    """A running server of one broker: its address and the thread that serves it."""

    def __init__(self, broker: Broker, host: str, port: int, advertised_host: str) -> None:
        self.broker = broker
        self.host = host
        self.port = port  # the bound port (the OS chose it if 0 was asked)
        self.address = f"{advertised_host}:{port}"  # what clients bootstrap from
        self.registry_url: str | None = None  # the Schema Registry served beside it, if asked for
        self.holders = 1
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<Endpoint {self.address} of {self.broker.data_dir}>"

    def matches(self, host: str, port: int | None, *, registry: bool = False) -> bool:
        return host == self.host and port in (None, 0, self.port) and (self.registry_url is not None or not registry)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


_endpoints: dict[Broker, Endpoint] = {}
_lock = threading.Lock()


def acquire(broker: Broker, *, host: str, port: int | None, schema_registry_port: int | None = None) -> Endpoint:
    """The endpoint serving ``broker``: the running one if it listens where asked (any
    port when ``port`` is None), else a new one on ``host:port`` (a free port if None),
    with the Schema Registry's REST API on ``schema_registry_port`` (0: a free one) when
    given. Raises ConfigError when the broker is already served elsewhere (or without the
    registry asked for) or the address cannot be bound."""
    with _lock:
        broker.check_open()
        running = _endpoints.get(broker)
        if running is not None and running.running:
            if not running.matches(host, port, registry=schema_registry_port is not None):
                raise ConfigError(
                    f"{broker.data_dir} is already served at {running.address}"
                    f"{'' if running.registry_url is None else ' with a Schema Registry'}; a directory is served "
                    f"on one address (close the lab that serves it, then serve it on {host}:{port})"
                )
            running.holders += 1
            return running
        endpoint = _start(broker, host, port or 0, schema_registry_port)
        _endpoints[broker] = endpoint
        return endpoint


def release(endpoint: Endpoint) -> None:
    """Let go of ``endpoint``; the last holder stops it: new connections are refused,
    requests in progress finish (long polls return early), then the connections close."""
    with _lock:
        endpoint.holders -= 1
        if endpoint.holders > 0:
            return
        if _endpoints.get(endpoint.broker) is endpoint:
            del _endpoints[endpoint.broker]
    _stop(endpoint)


def _start(broker: Broker, host: str, port: int, schema_registry_port: int | None) -> Endpoint:
    ready = threading.Event()
    started: list[Endpoint] = []
    failed: list[BaseException] = []

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_ready(advertised_host: str, bound_port: int, registry_url: str | None) -> None:
            endpoint = Endpoint(broker, host, bound_port, advertised_host)
            endpoint.registry_url = registry_url
            endpoint.loop, endpoint.stop_event = loop, stop
            started.append(endpoint)
            ready.set()

        await run(broker, host=host, port=port, stop=stop, ready=on_ready, schema_registry_port=schema_registry_port)
        # A connection its client closed as the server stopped may still be closing (no
        # longer counted by the server): let it finish, or its socket is left to the GC.
        closing = asyncio.all_tasks() - {asyncio.current_task()}
        if closing:
            await asyncio.wait(closing, timeout=CLOSE_TIMEOUT_S)

    def serve() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # before ready: raised by acquire(); after: only logged
            if started:
                log.exception("the Kafka endpoint of %s stopped with an error", broker.data_dir)
            failed.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=serve, name=f"streamlab-serve-{broker.data_dir.name}", daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT_S):
        raise OperationTimeoutError(f"the Kafka endpoint of {broker.data_dir} did not start in {START_TIMEOUT_S:.0f} s")
    if not started:
        thread.join(STOP_TIMEOUT_S)
        exc = failed[0] if failed else None
        if isinstance(exc, OSError):  # the port is taken, or the host is not this machine's
            raise ConfigError(
                f"cannot serve {broker.data_dir} on {host}:{port}: {exc.strerror or exc}; "
                "choose another port, or none for a free one"
            ) from exc
        raise exc or OperationTimeoutError(f"the Kafka endpoint of {broker.data_dir} ended before it was ready")
    started[0].thread = thread
    return started[0]


def _stop(endpoint: Endpoint) -> None:
    loop, stop, thread = endpoint.loop, endpoint.stop_event, endpoint.thread
    if loop is None or stop is None or thread is None:
        return
    with contextlib.suppress(RuntimeError):  # the loop already ended (the server stopped by itself)
        loop.call_soon_threadsafe(stop.set)
    thread.join(STOP_TIMEOUT_S)
    if thread.is_alive():
        raise OperationTimeoutError(
            f"the Kafka endpoint of {endpoint.broker.data_dir} did not stop within {STOP_TIMEOUT_S:.0f} s"
        )
    log.info("stopped serving %s at %s", endpoint.broker.data_dir, endpoint.address)
