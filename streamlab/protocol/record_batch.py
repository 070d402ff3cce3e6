"""Kafka RecordBatch v2 (magic 2): the record and batch types, and decoding record by
record (encoding is in batch_encoding.py).

The batch header is described in batch_layout.py (the CRC leaves ``base_offset`` and
``partition_leader_epoch`` outside, see ``batch_layout.rebase``), the codecs in compression.py.
With compression, only the records section is compressed. Each record is::

    length varint | attributes int8 | timestamp_delta varlong | offset_delta varint
    | key_len varint | key | value_len varint | value | header_count varint
    | (hkey_len varint | hkey utf-8 | hvalue_len varint | hvalue)*

where every varint is zigzag-encoded and a length of -1 means null.
"""

from __future__ import annotations

from dataclasses import dataclass

import cramjam
from crc32c import crc32c

from streamlab.errors import CorruptRecordError
from streamlab.protocol.batch_layout import (
    ATTRIBUTES_OFFSET,
    CODEC_MASK,
    CODECS,
    CONTROL_BIT,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    MIN_RECORD_SIZE,
    OFFSET_LENGTH,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
    Compression,
    TimestampType,
)
from streamlab.protocol.compression import DECOMPRESS
from streamlab.protocol.varint import ZIGZAG_BYTE, Malformed, read_varint

__all__ = ["RecordBatch", "WireRecord", "decode_batch", "decode_batches"]


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One record inside a batch, with absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """A decoded batch: header fields as stored on the wire plus its records."""

    base_offset: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records: tuple[WireRecord, ...]
    compression: Compression
    is_transactional: bool
    is_control: bool
    timestamp_type: TimestampType

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta


# Setting slots through their member descriptors skips the frozen dataclass __init__
# (object.__setattr__ per field), which roughly halves the per-record decode cost.
_new_object = object.__new__
_set_offset = vars(WireRecord)["offset"].__set__
_set_timestamp = vars(WireRecord)["timestamp"].__set__
_set_key = vars(WireRecord)["key"].__set__
_set_value = vars(WireRecord)["value"].__set__
_set_headers = vars(WireRecord)["headers"].__set__


def _decode_records(
    buf: bytes,
    pos: int,
    end: int,
    count: int,
    base_offset: int,
    base_timestamp: int,
    fixed_timestamp: int | None,
) -> tuple[WireRecord, ...]:
    if count * MIN_RECORD_SIZE > end - pos:
        raise Malformed(f"{count} records cannot fit in {end - pos} bytes")
    zz = ZIGZAG_BYTE
    slow = read_varint
    out: list[WireRecord] = []
    append = out.append
    for index in range(count):
        # Each varint repeats the one- and two-byte fast paths inline: a function call
        # per varint would dominate the decode time.
        b = buf[pos]
        if b < 0x80:
            length = zz[b]
            pos += 1
        elif buf[pos + 1] < 0x80:
            u = (b & 0x7F) | (buf[pos + 1] << 7)
            length = (u >> 1) ^ -(u & 1)
            pos += 2
        else:
            length, pos = slow(buf, pos)
        record_end = pos + length
        if length < MIN_RECORD_SIZE or record_end > end:
            raise Malformed(f"record {index} has invalid length {length}")
        pos += 1  # record attributes: unused by magic 2
        b = buf[pos]
        if b < 0x80:
            timestamp_delta = zz[b]
            pos += 1
        elif buf[pos + 1] < 0x80:
            u = (b & 0x7F) | (buf[pos + 1] << 7)
            timestamp_delta = (u >> 1) ^ -(u & 1)
            pos += 2
        else:
            timestamp_delta, pos = slow(buf, pos)
        b = buf[pos]
        if b < 0x80:
            offset_delta = zz[b]
            pos += 1
        elif buf[pos + 1] < 0x80:
            u = (b & 0x7F) | (buf[pos + 1] << 7)
            offset_delta = (u >> 1) ^ -(u & 1)
            pos += 2
        else:
            offset_delta, pos = slow(buf, pos)
        b = buf[pos]
        if b < 0x80:
            size = zz[b]
            pos += 1
        elif buf[pos + 1] < 0x80:
            u = (b & 0x7F) | (buf[pos + 1] << 7)
            size = (u >> 1) ^ -(u & 1)
            pos += 2
        else:
            size, pos = slow(buf, pos)
        if size >= 0:
            key: bytes | None = buf[pos : pos + size]
            pos += size
        elif size == -1:
            key = None
        else:
            raise Malformed(f"record {index} has key length {size}")
        b = buf[pos]
        if b < 0x80:
            size = zz[b]
            pos += 1
        elif buf[pos + 1] < 0x80:
            u = (b & 0x7F) | (buf[pos + 1] << 7)
            size = (u >> 1) ^ -(u & 1)
            pos += 2
        else:
            size, pos = slow(buf, pos)
        if size >= 0:
            value: bytes | None = buf[pos : pos + size]
            pos += size
        elif size == -1:
            value = None
        else:
            raise Malformed(f"record {index} has value length {size}")
        b = buf[pos]
        if b < 0x80:
            header_count = zz[b]
            pos += 1
        elif buf[pos + 1] < 0x80:
            u = (b & 0x7F) | (buf[pos + 1] << 7)
            header_count = (u >> 1) ^ -(u & 1)
            pos += 2
        else:
            header_count, pos = slow(buf, pos)
        if header_count:
            headers, pos = _decode_headers(buf, pos, record_end, header_count, index)
        else:
            headers = ()
        if pos != record_end:
            raise Malformed(f"record {index} declares {length} bytes but its fields take a different size")
        record = _new_object(WireRecord)
        _set_offset(record, base_offset + offset_delta)
        _set_timestamp(record, base_timestamp + timestamp_delta if fixed_timestamp is None else fixed_timestamp)
        _set_key(record, key)
        _set_value(record, value)
        _set_headers(record, headers)
        append(record)
    if pos != end:
        raise Malformed(f"{end - pos} unexpected bytes after the last of {count} records")
    return tuple(out)


def _decode_headers(
    buf: bytes, pos: int, record_end: int, count: int, index: int
) -> tuple[tuple[tuple[str, bytes | None], ...], int]:
    if count < 0 or count * 2 > record_end - pos:
        raise Malformed(f"record {index} has invalid header count {count}")
    zz = ZIGZAG_BYTE
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(count):
        b = buf[pos]
        if b < 0x80:
            size = zz[b]
            pos += 1
        else:
            size, pos = read_varint(buf, pos)
        if size < 0:
            raise Malformed(f"record {index} has a header key of length {size}")
        name = buf[pos : pos + size].decode()
        pos += size
        b = buf[pos]
        if b < 0x80:
            size = zz[b]
            pos += 1
        else:
            size, pos = read_varint(buf, pos)
        if size >= 0:
            headers.append((name, buf[pos : pos + size]))
            pos += size
        elif size == -1:
            headers.append((name, None))
        else:
            raise Malformed(f"record {index} has a header value of length {size}")
    return tuple(headers), pos


def decode_batches(
    data: bytes | bytearray | memoryview,
    *,
    verify_crc: bool = True,
    allow_truncated: bool = True,
) -> list[RecordBatch]:
    """Decode every complete batch in a Produce/Fetch ``records`` field.

    A trailing partial batch (Fetch responses may cut one at ``max_bytes``) is ignored
    unless ``allow_truncated`` is false, which suits Produce where a partial batch means
    a broken client. Raises :class:`~streamlab.errors.CorruptRecordError` for a CRC
    mismatch, an unsupported magic or codec, or malformed record data.
    """
    buf = data if isinstance(data, bytes) else bytes(data)
    batches: list[RecordBatch] = []
    pos = 0
    total = len(buf)
    while total - pos >= LOG_OVERHEAD:
        base_offset, length = OFFSET_LENGTH.unpack_from(buf, pos)
        end = pos + LOG_OVERHEAD + length
        if length < MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"batch at byte {pos}: length {length} is below the {MIN_BATCH_LENGTH}-byte v2 header",
                offset=base_offset,
            )
        if end > total:
            break
        batches.append(decode_batch(buf, pos, end, verify_crc))
        pos = end
    if pos < total and not allow_truncated:
        raise CorruptRecordError(f"{total - pos} bytes at byte {pos} do not form a complete record batch")
    return batches


def decode_batch(buf: bytes, pos: int, end: int, verify_crc: bool) -> RecordBatch:
    (
        base_offset,
        _length,
        leader_epoch,
        magic,
        crc,
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    ) = HEADER.unpack_from(buf, pos)
    where = f"batch at byte {pos} (base offset {base_offset})"
    if magic != 2:
        raise CorruptRecordError(f"{where}: magic {magic} is not supported, only 2", offset=base_offset)
    if verify_crc:
        actual = crc32c(memoryview(buf)[pos + ATTRIBUTES_OFFSET : end])
        if actual != crc:
            raise CorruptRecordError(
                f"{where}: CRC-32C mismatch (stored {crc:#010x}, computed {actual:#010x})",
                offset=base_offset,
            )
    codec = attributes & CODEC_MASK
    if codec >= len(CODECS):
        raise CorruptRecordError(f"{where}: unknown compression codec id {codec}", offset=base_offset)
    if count < 0:
        raise CorruptRecordError(f"{where}: negative record count {count}", offset=base_offset)
    compression = CODECS[codec]
    log_append = bool(attributes & TIMESTAMP_TYPE_BIT)
    start = pos + HEADER_SIZE
    try:
        if codec:
            try:
                body = DECOMPRESS[compression](buf[start:end])
            except cramjam.DecompressionError as exc:
                raise Malformed(f"{compression} decompression failed: {exc}") from None
            start, end, buf = 0, len(body), body
        # With LogAppendTime the broker stamps the batch once; record deltas are stale.
        records = _decode_records(
            buf, start, end, count, base_offset, base_timestamp, max_timestamp if log_append else None
        )
    except Malformed as exc:
        raise CorruptRecordError(f"{where}: {exc}", offset=base_offset) from None
    except IndexError:
        raise CorruptRecordError(f"{where}: record data ends mid-record", offset=base_offset) from None
    except UnicodeDecodeError as exc:
        raise CorruptRecordError(f"{where}: header key is not UTF-8 ({exc})", offset=base_offset) from None
    return RecordBatch(
        base_offset=base_offset,
        partition_leader_epoch=leader_epoch,
        magic=magic,
        crc=crc,
        attributes=attributes,
        last_offset_delta=last_offset_delta,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        records=records,
        compression=compression,
        is_transactional=bool(attributes & TRANSACTIONAL_BIT),
        is_control=bool(attributes & CONTROL_BIT),
        timestamp_type="log_append" if log_append else "create",
    )
