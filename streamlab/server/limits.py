"""How much `streamlab serve` lets clients make it hold: Kafka's broker limits, by Kafka's names.

A client decides how many bytes it asks for and how many it sends, so without limits one
client can make the server hold any amount of memory. These are Kafka's bounds, with
Kafka's defaults where Kafka has one:

``fetch.max.bytes`` (55 MB)
    The most one Fetch response holds, whatever the request's ``max_bytes``; as in Kafka,
    the first record of the first partition with data is returned even if larger, so a
    consumer always makes progress. Each partition gets at most the request's
    ``partition_max_bytes`` (the consumer's ``max.partition.fetch.bytes``).
``socket.request.max.bytes`` (100 MiB)
    The largest request frame; a larger size closes the connection.
``queued.max.request.bytes`` (Kafka: unbounded; here 100 MiB)
    The bytes of requests read and not yet answered plus responses not yet written, for
    the whole server. Past it the server reads no new request (the clients' sockets fill
    and their sends wait, TCP's backpressure) until memory is returned; Fetch responses
    shrink to what the budget has left. Kafka requires it to be at least
    ``socket.request.max.bytes``, so that any valid request can be read.
``max.connections.per.ip`` (Kafka: unbounded; here 1000)
    Connections from one address beyond this are closed as they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamlab.errors import ConfigError

__all__ = ["ServerLimits"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    """The memory and connection limits of one server (see the module docstring)."""

    fetch_max_bytes: int = 57_671_680  # fetch.max.bytes, Kafka's 55 MB
    socket_request_max_bytes: int = 100 * MiB  # socket.request.max.bytes
    queued_max_request_bytes: int = 100 * MiB  # queued.max.request.bytes
    max_connections_per_ip: int = 1000  # max.connections.per.ip

    def __post_init__(self) -> None:
        for name in ("fetch_max_bytes", "socket_request_max_bytes", "queued_max_request_bytes",
                     "max_connections_per_ip"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name.replace('_', '.')} must be a positive int, not {value!r}")
        if self.socket_request_max_bytes > 2**31 - 1:
            raise ConfigError("socket.request.max.bytes cannot exceed 2147483647 (a frame size is an int32)")
        if self.queued_max_request_bytes < self.socket_request_max_bytes:
            raise ConfigError(
                f"queued.max.request.bytes ({self.queued_max_request_bytes}) must be at least "
                f"socket.request.max.bytes ({self.socket_request_max_bytes}): the largest request must fit"
            )
