"""Answers for requests streamlab does not offer, so that clients fail at once.

Well-behaved clients only send what ApiVersions advertises; a client that sends an API
streamlab does not serve anyway (or one advertised before its handler exists) would, if
the connection were closed as Kafka closes it, reconnect and retry until its own timeout.
Instead it gets the API's response with every error code UNSUPPORTED_VERSION (which no
client retries) and every error message naming what was asked; collections are empty.
kio models every Kafka API, so any API key and version it knows can be answered this way.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import sys
import typing
import uuid
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode

from streamlab.protocol.framing import encode_response

log = logging.getLogger("streamlab.server")

UNSUPPORTED_VERSION = ErrorCode.unsupported_version


def unsupported_response(api_key: int, api_version: int, message: str) -> Any | None:
    """A response body for ``api_key``/``api_version`` refusing the request, or None if kio
    has no schema for it (then the connection is closed, as Kafka does)."""
    try:
        schema = load_response_schema(api_key, api_version)
    except Exception:  # kio raises various errors for unknown keys and versions
        return None
    return _fill(schema, message)


def _fill(cls: Any, message: str) -> Any:
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
            continue  # tagged or defaulted fields keep their defaults
        values[field.name] = _value(field.name, hints[field.name], message)
    return cls(**values)


def _value(name: str, hint: Any, message: str) -> Any:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        return ()
    if type(None) in args:  # optional: the message if it is one, else null
        return message if name == "error_message" else None
    if hint is ErrorCode:
        return UNSUPPORTED_VERSION
    if isinstance(hint, type) and issubclass(hint, datetime.timedelta):
        return datetime.timedelta(0)
    if isinstance(hint, type) and issubclass(hint, datetime.datetime):
        return hint.parse(datetime.datetime.fromtimestamp(0, datetime.UTC)) if hasattr(hint, "parse") else None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _fill(hint, message)
    if isinstance(hint, type) and issubclass(hint, bool):
        return False
    if isinstance(hint, type) and issubclass(hint, str):
        return hint(message) if name == "error_message" else hint("")
    if isinstance(hint, type) and issubclass(hint, int):
        return hint(-1)
    if isinstance(hint, type) and issubclass(hint, bytes):
        return b""
    if hint is float:
        return 0.0
    if hint is uuid.UUID:
        return uuid.UUID(int=0)
    raise TypeError(f"no placeholder for field {name}: {hint!r}")


def refusal(api_key: int, api_version: int, correlation_id: int, peer: str) -> bytes | None:
    """The encoded refusal of a request for an API streamlab does not offer, logged as a
    warning naming it; None if it cannot be answered (the caller closes the connection)."""
    name = api_name(api_key)
    message = f"{name} (API key {api_key}) v{api_version} is not offered by streamlab"
    body = unsupported_response(api_key, api_version, message)
    log.warning("%s: %s; %s", peer, message, "answered UNSUPPORTED_VERSION" if body else "closing the connection")
    if body is None:
        return None
    return encode_response(api_key, api_version, correlation_id, body)


def api_name(api_key: int) -> str:
    """Kafka's name of ``api_key`` (e.g. 43: ElectLeaders), from kio's request schemas."""
    for version in range(20):
        try:
            return str(load_request_schema(api_key, version).__name__).removesuffix("Request")
        except Exception:  # not a version kio models
            continue
    return f"API key {api_key}"
