"""Varints, and the error their readers raise.

Every length, delta and count inside a v2 record is a zigzag-encoded varint; a length of
-1 means null. Flexible protocol versions write their lengths and counts as unsigned
varints (``length + 1``, 0 for null).
"""

from __future__ import annotations

from typing import Final

from streamlab.protocol.batch_layout import INT64_MAX, INT64_MIN


class Malformed(Exception):
    """A record-level decode failure; the batch decoder re-raises it with the batch's
    position as a :class:`~streamlab.errors.CorruptRecordError`."""


# Precomputed varint encodings: in real batches nearly every length, delta and count is
# small, so a tuple lookup replaces the per-byte loop on the hot path.
TABLE_LIMIT: Final = 1 << 14


def uvarint_slow(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


UVARINT: Final[tuple[bytes, ...]] = tuple(uvarint_slow(i) for i in range(TABLE_LIMIT))
ZIGZAG_BYTE: Final[tuple[int, ...]] = tuple((b >> 1) ^ -(b & 1) for b in range(0x80))


def uvarint(value: int) -> bytes:
    """Unsigned varint encoding of a non-negative value."""
    return UVARINT[value] if value < TABLE_LIMIT else uvarint_slow(value)


def read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    """Unsigned varint of at most 5 bytes (a protocol length or count) at ``pos`` ->
    (value, next position); :class:`Malformed` if it is cut short or longer."""
    value = shift = 0
    for i in range(pos, min(pos + 5, len(buf))):
        value |= (buf[i] & 0x7F) << shift
        if not buf[i] & 0x80:
            return value, i + 1
        shift += 7
    raise Malformed(f"bad or truncated varint at byte {pos}")


def zigzag_varint(value: int) -> bytes:
    """Zigzag varlong encoding of a signed 64-bit value."""
    zz = (value << 1) ^ (value >> 63)
    if zz < TABLE_LIMIT:
        return UVARINT[zz]
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{value} does not fit a signed 64-bit varlong")
    return uvarint_slow(zz)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Zigzag varint at ``pos`` (any length up to 10 bytes) -> (value, next position)."""
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise Malformed(f"varint at byte {pos - 10} is longer than 10 bytes")
