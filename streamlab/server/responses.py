"""Building kio response bodies for whichever API version a client negotiated.

kio generates one set of frozen dataclasses per API version. Field names stay the same
from version to version and later versions only add fields, so a handler describes its
answer once, with the newest names, and :func:`build` drops what the negotiated version
does not have. Nested types are looked up by name in the version's module
(:func:`types_for`), e.g. ``types_for(0, 9).PartitionProduceResponse``.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import sys
from types import ModuleType
from typing import Any

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode

from streamlab.errors import kafka_code_for

__all__ = ["build", "build_from", "error_code", "error_of", "millis", "types_for"]

ZERO = datetime.timedelta(0)


@functools.cache
def types_for(api_key: int, api_version: int) -> ModuleType:
    """The kio module holding the response types of ``api_key`` at ``api_version``."""
    return sys.modules[load_response_schema(api_key, api_version).__module__]


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def build(cls: Any, **fields: Any) -> Any:
    """``cls(**fields)`` without the fields this version of the schema does not have."""
    names = _field_names(cls)
    return cls(**{name: value for name, value in fields.items() if name in names})


def build_from(cls: Any, source: Any, *same_names: str, **fields: Any) -> Any:
    """:func:`build` with the fields ``same_names`` taken from the attributes of ``source``
    that have the same names (a member, a transaction), and ``fields`` as given."""
    return build(cls, **{name: getattr(source, name) for name in same_names}, **fields)


def has_field(cls: Any, name: str) -> bool:
    return name in _field_names(cls)


def error_code(code: int) -> ErrorCode:
    """kio wants its enum; a code it does not know becomes UNKNOWN_SERVER_ERROR."""
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.unknown_server_error


def error_of(exc: BaseException) -> ErrorCode:
    return error_code(kafka_code_for(exc))


def millis(ms: int | float) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=ms)
