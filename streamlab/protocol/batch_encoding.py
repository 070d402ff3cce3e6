"""Kafka RecordBatch v2 (magic 2) encoding, record by record: what a producer sends and
what Fetch answers with for a few records (the columnar encoder is batch_columns.py).

The layout of a record is in record_batch.py's docstring, the batch header in
batch_layout.py, the codecs in compression.py.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from crc32c import crc32c

from streamlab.errors import SerializationError
from streamlab.protocol.batch_layout import (
    ATTRIBUTES_OFFSET,
    CODEC_IDS,
    CODECS,
    CONTROL_BIT,
    CRC_OFFSET,
    HEADER,
    INT32_MAX,
    MIN_BATCH_LENGTH,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
    Compression,
    TimestampType,
)
from streamlab.protocol.compression import COMPRESS
from streamlab.protocol.record_batch import WireRecord
from streamlab.protocol.varint import UVARINT, zigzag_varint

__all__ = ["encode_batch", "encode_headers"]


def encode_headers(headers: tuple[tuple[str, bytes | None], ...]) -> bytes:
    """One record's header section: the count, then each name and value."""
    table = UVARINT
    count = len(headers)
    parts = [table[count << 1] if count < 8192 else zigzag_varint(count)]
    append = parts.append
    for name, value in headers:
        raw = name.encode()
        size = len(raw)
        append(table[size << 1] if size < 8192 else zigzag_varint(size))
        append(raw)
        if value is None:
            append(b"\x01")
        else:
            size = len(value)
            append(table[size << 1] if size < 8192 else zigzag_varint(size))
            append(value)
    return b"".join(parts)


def _nullable(data: bytes | None) -> tuple[bytes, int, bytes]:
    """A key's or value's bytes, their length and the length's varint (-1: null)."""
    if data is None:
        return b"", 0, b"\x01"
    size = len(data)
    return data, size, UVARINT[size << 1] if size < 8192 else zigzag_varint(size)


def _encode_records(records: Sequence[WireRecord], base_offset: int, base_timestamp: int) -> list[bytes]:
    table = UVARINT
    varint = zigzag_varint
    parts: list[bytes] = []
    extend = parts.extend
    previous_delta = -1
    for record in records:
        offset_delta = record.offset - base_offset
        if offset_delta <= previous_delta or offset_delta > INT32_MAX:
            raise ValueError(
                f"record offset {record.offset} must be above the previous one and within "
                f"2**31-1 of base_offset {base_offset}"
            )
        previous_delta = offset_delta
        offset_bytes = table[offset_delta << 1] if offset_delta < 8192 else varint(offset_delta)
        timestamp_bytes = varint(record.timestamp - base_timestamp)
        key, key_len, key_bytes = _nullable(record.key)
        value, value_len, value_bytes = _nullable(record.value)
        headers = encode_headers(record.headers) if record.headers else b"\x00"
        size = (
            1
            + len(timestamp_bytes)
            + len(offset_bytes)
            + len(key_bytes)
            + key_len
            + len(value_bytes)
            + value_len
            + len(headers)
        )
        extend(
            (
                table[size << 1] if size < 8192 else varint(size),
                b"\x00",
                timestamp_bytes,
                offset_bytes,
                key_bytes,
                key,
                value_bytes,
                value,
                headers,
            )
        )
    return parts


def encode_batch(
    records: Sequence[WireRecord],
    *,
    base_offset: int = 0,
    compression: Compression = "none",
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    timestamp_type: TimestampType = "create",
    transactional: bool = False,
    control: bool = False,
) -> bytes:
    """Encode ``records`` as one v2 batch (``control``: a transaction marker batch).

    Record offsets must be strictly increasing and at least ``base_offset`` (gaps are
    allowed, as in compacted logs). The first record's timestamp becomes the batch base
    timestamp. Raises :class:`ValueError` for out-of-range fields and
    :class:`~streamlab.errors.SerializationError` for keys, values or headers that are not
    bytes / str.
    """
    if not records:
        raise ValueError("a record batch needs at least one record")
    codec = CODEC_IDS.get(compression)
    if codec is None:
        raise ValueError(f"unknown compression {compression!r}; expected one of {CODECS}")
    if timestamp_type not in ("create", "log_append"):
        raise ValueError(f"unknown timestamp_type {timestamp_type!r}")
    if transactional and producer_id < 0:
        raise ValueError("a transactional batch needs a producer_id")
    base_timestamp = records[0].timestamp
    try:
        max_timestamp = max(record.timestamp for record in records)
        body = b"".join(_encode_records(records, base_offset, base_timestamp))
    except (TypeError, AttributeError, ValueError) as exc:
        culprit = _find_unencodable(records)
        if culprit is None:
            raise
        raise culprit from exc
    if codec:
        body = COMPRESS[compression](body)
    attributes = codec
    if timestamp_type == "log_append":
        attributes |= TIMESTAMP_TYPE_BIT
    if transactional:
        attributes |= TRANSACTIONAL_BIT
    if control:
        attributes |= CONTROL_BIT
    fields = (
        base_offset,
        MIN_BATCH_LENGTH + len(body),
        partition_leader_epoch,
        2,
        0,
        attributes,
        records[-1].offset - base_offset,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    try:
        header = bytearray(HEADER.pack(*fields))
    except struct.error as exc:
        raise ValueError(f"batch header field out of range: {exc}") from None
    crc = crc32c(body, crc32c(memoryview(header)[ATTRIBUTES_OFFSET:]))
    struct.pack_into(">I", header, CRC_OFFSET, crc)
    return bytes(header) + body


def _find_unencodable(records: Sequence[WireRecord]) -> SerializationError | None:
    """Name the record that broke the fast path; None if every field has a valid type."""
    byte_like = (bytes, bytearray, memoryview)
    for record in records:
        for field in ("key", "value"):
            data = getattr(record, field)
            if data is not None and not isinstance(data, byte_like):
                return SerializationError(
                    f"record at offset {record.offset}: {field} must be bytes or None, not {type(data).__name__}",
                    offset=record.offset,
                )
        if not isinstance(record.timestamp, int) or not isinstance(record.offset, int):
            return SerializationError(
                f"record at offset {record.offset!r}: offset and timestamp must be int",
            )
        for header in record.headers:
            if (
                not isinstance(header, tuple)
                or len(header) != 2
                or not isinstance(header[0], str)
                or not (header[1] is None or isinstance(header[1], byte_like))
            ):
                return SerializationError(
                    f"record at offset {record.offset}: header {header!r} must be (str, bytes | None)",
                    offset=record.offset,
                )
    return None
