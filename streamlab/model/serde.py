"""Turning Python keys and values into bytes and back, remembering what they were.

Each stored key and value carries a one-byte *format* so a consumer gets back what was
sent: ``bytes`` stay bytes, ``str`` is UTF-8, anything JSON-serialisable (dict, list,
number, bool) is compact JSON. Records arriving over the Kafka protocol are plain bytes.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from streamlab.errors import SerializationError

FMT_NULL: Final = 0
FMT_BYTES: Final = 1
FMT_STR: Final = 2
FMT_JSON: Final = 3
# A transaction marker (commit/abort control record), never a user's key or value: the
# key holds Kafka's control key (version, type) and the value its control value. Readers
# skip rows with this key format (streamlab.broker.transaction_markers.visible_filter_sql).
FMT_CONTROL: Final = -1
JSON_WHITESPACE: Final = b" \t\r\n"

# Over Kafka a record's formats travel as headers holding the format's ASCII digit, so
# streamlab's own records come back as sent while any other client's (no header) read as
# bytes. Written by the kafka:// producer and the server's Fetch; read by its Produce and
# the kafka:// consumer.
KEY_FORMAT_HEADER: Final = "streamlab.key.format"
VALUE_FORMAT_HEADER: Final = "streamlab.value.format"
_DIGITS = {fmt: str(fmt).encode() for fmt in (FMT_NULL, FMT_BYTES, FMT_STR, FMT_JSON)}
_BY_DIGIT = {digit: fmt for fmt, digit in _DIGITS.items()}


def format_header(fmt: int) -> bytes:
    """The header value that carries format ``fmt``."""
    return _DIGITS[fmt]


def header_format(raw: bytes | None) -> int | None:
    """The format a header value names (None: not one of ours)."""
    return _BY_DIGIT.get(raw or b"")


# orjson is several times faster than the standard library both ways, and both ways are hot
# paths (one send per record, one decode per consumed record). Like JavaScript's
# JSON.stringify and pandas' to_json, it writes NaN and infinities as null.
JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_dumps = orjson.dumps
loads = orjson.loads


def encode(obj: Any, *, what: str = "value") -> tuple[bytes | None, int]:
    """``obj`` as (bytes, format). Raises :class:`SerializationError` when it cannot be."""
    if obj is None:
        return None, FMT_NULL
    if isinstance(obj, bytes):
        return obj, FMT_BYTES
    if isinstance(obj, str):
        return encode_str(obj, what=what), FMT_STR
    if isinstance(obj, bytearray | memoryview):
        return bytes(obj), FMT_BYTES
    try:
        return dumps_value(obj), FMT_JSON
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"cannot serialize {what} of type {type(obj).__name__}: {exc}. "
            "Send bytes, str, or JSON-serialisable data (dict, list, number, bool, None)."
        ) from exc


def dumps_value(obj: Any) -> bytes:
    """``obj`` as compact JSON, as :func:`encode` writes a dict, list or number (raises
    ``TypeError`` for what JSON cannot hold)."""
    return _dumps(obj, option=JSON_OPTIONS)


def encode_str(text: str, *, what: str) -> bytes:
    """``text`` as UTF-8; a lone surrogate (say from a badly decoded file) cannot be."""
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"{what} is not valid Unicode: {exc.reason} at index {exc.start} ({text[exc.start : exc.end]!r}); "
            "send bytes, or repair the text (for example text.encode('utf-8', 'replace').decode())"
        ) from exc


def decode(data: bytes | None, fmt: int) -> Any:
    """The Python object that :func:`encode` turned into ``(data, fmt)``."""
    if data is None:
        return None
    if fmt == FMT_JSON:
        # send_many once stored an empty document for a row with no value columns: read it as null
        return loads(data) if data else None
    if fmt == FMT_STR:
        return data.decode()
    return data


def looks_like_object(data: bytes) -> bool:
    """Whether ``data`` may be a JSON object: its first byte that is not JSON whitespace is "{"."""
    return data[:1] == b"{" or data.lstrip(JSON_WHITESPACE)[:1] == b"{"


def decode_value(data: bytes | None, fmt: int) -> Any:
    """A record's value as a consumer shows it: :func:`decode`, except that bytes with no
    recorded format (what other Kafka clients write) holding a JSON object come back as
    a dict, as ``replay`` spreads them into columns. Other bytes stay bytes."""
    if fmt == FMT_BYTES and data is not None and looks_like_object(data):
        try:
            obj = loads(data)
        except orjson.JSONDecodeError:
            return data
        return obj if isinstance(obj, dict) else data
    return decode(data, fmt)


def encode_headers(headers: Any) -> list[tuple[str, bytes]] | None:
    """Headers as Kafka has them: ordered (name, bytes) pairs. Accepts a mapping or pairs."""
    if not headers:
        return None
    items = headers.items() if hasattr(headers, "items") else headers
    out: list[tuple[str, bytes]] = []
    try:
        for name, val in items:
            if not isinstance(name, str):
                raise SerializationError(f"header names must be str, got {type(name).__name__}")
            encode_str(name, what=f"header name {name!r}")
            if isinstance(val, str):
                val = encode_str(val, what=f"header {name!r}")
            elif isinstance(val, bytearray | memoryview):
                val = bytes(val)
            elif not isinstance(val, bytes) and val is not None:
                raise SerializationError(f"header {name!r} must be str or bytes, got {type(val).__name__}")
            out.append((name, val))
    except ValueError as exc:
        raise SerializationError(f"headers must be a mapping or (name, value) pairs: {exc}") from exc
    return out
