"""One module per Kafka API, found at import time.

Each module defines ``API_KEY: int`` and ``async def handle(ctx, request, conn)`` returning
the kio response body (see :mod:`streamlab.server.context`). Adding an API is adding a
module here: :data:`HANDLERS` is built by scanning the package, with no list to edit.
Modules whose names start with ``_`` are helpers, not handlers.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from typing import Any

from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext

Handler = Callable[[ServerContext, ParsedRequest, ConnectionInfo], Awaitable[Any]]


def _discover() -> dict[int, Handler]:
    found: dict[int, Handler] = {}
    owners: dict[int, str] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        api_key, handle = getattr(module, "API_KEY", None), getattr(module, "handle", None)
        if not isinstance(api_key, int) or not callable(handle):
            raise ImportError(f"{module.__name__} must define API_KEY: int and an async handle()")
        if api_key in found:
            raise ImportError(f"{module.__name__} and {owners[api_key]} both handle API key {api_key}")
        found[api_key], owners[api_key] = handle, module.__name__
    return found


HANDLERS: dict[int, Handler] = _discover()

__all__ = ["HANDLERS", "Handler"]
