"""``Lab.serve``: a lab's own Kafka endpoint, in this process.

One endpoint per lab: its arguments checked, started on first need (the wire server is
imported only then), the same address answered when asked again, and stopped when the lab
closes. The server itself is :mod:`streamlab.server.in_process`; the front starts it on the
broker the backend hands over, since backends do not import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from streamlab.errors import ClosedError, ConfigError
from streamlab.port.backend import Backend

if TYPE_CHECKING:
    from streamlab.server.in_process import Endpoint


def _port(what: str, port: object, *, none_ok: bool) -> None:
    if isinstance(port, bool) or not ((none_ok and port is None) or (isinstance(port, int) and 0 <= port <= 65535)):
        free = "0 or None: a free one" if none_ok else "0: a free one"
        raise ConfigError(f"{what} must be an integer from 0 to 65535 ({free}), got {port!r}")


class LabEndpoint:
    """The endpoint of one lab (``closed()`` says when the lab is gone)."""

    def __init__(self, backend: Backend, closed: Callable[[], bool]) -> None:
        self._backend, self._closed = backend, closed
        self._endpoint: Endpoint | None = None

    def serve(self, port: int | None, *, host: str, schema_registry_port: int | None) -> str:
        """The bootstrap address ``"HOST:PORT"``, once it accepts connections (see ``Lab.serve``)."""
        from streamlab.server.in_process import acquire  # the wire server loads only when served

        _port("port", port, none_ok=True)
        if not isinstance(host, str) or not host:
            raise ConfigError(f"host must be a host name or IP address, got {host!r}")
        registry = schema_registry_port
        if registry is not None:
            _port("schema_registry_port", registry, none_ok=False)
        if self._closed():
            raise ClosedError("this lab is closed; connect again with streamlab.connect()")
        if self._endpoint is not None and self._endpoint.running:
            if not self._endpoint.matches(host, port, registry=registry is not None):
                raise ConfigError(f"this lab already serves at {self._endpoint.address}; close it to serve elsewhere")
            return self._endpoint.address
        self._endpoint = acquire(self._backend.broker_to_serve(), host=host, port=port, schema_registry_port=registry)
        return self._endpoint.address

    @property
    def registry_url(self) -> str | None:
        """The URL of the Schema Registry served beside it, else None."""
        endpoint = self._endpoint
        return endpoint.registry_url if endpoint is not None and endpoint.running else None

    def stop(self) -> None:
        if self._endpoint is not None:
            from streamlab.server.in_process import release

            endpoint, self._endpoint = self._endpoint, None
            release(endpoint)
