"""Kafka RecordBatch v2 (magic 2) encoding and decoding.

Layout (all integers big-endian; see Kafka's ``DefaultRecordBatch``)::

    base_offset int64 | batch_length int32 | partition_leader_epoch int32 | magic int8
    | crc uint32 | attributes int16 | last_offset_delta int32 | base_timestamp int64
    | max_timestamp int64 | producer_id int64 | producer_epoch int16 | base_sequence int32
    | record_count int32 | records...

The CRC-32C covers everything from ``attributes`` to the end, so the broker can rewrite
``base_offset`` and ``partition_leader_epoch`` (see :func:`rebase`) without re-encoding.
With compression, only the records section is compressed. Each record is::

    length varint | attributes int8 | timestamp_delta varlong | offset_delta varint
    | key_len varint | key | value_len varint | value | header_count varint
    | (hkey_len varint | hkey utf-8 | hvalue_len varint | hvalue)*

where every varint is zigzag-encoded and a length of -1 means null.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import cramjam
from crc32c import crc32c

from streamlab.errors import CorruptRecordError, SerializationError

__all__ = [
    "Compression",
    "RecordBatch",
    "TimestampType",
    "WireRecord",
    "decode_batches",
    "encode_batch",
    "rebase",
]

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
TimestampType = Literal["create", "log_append"]


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


_HEADER: Final = struct.Struct(">qiibIhiqqqhii")
_HEADER_SIZE: Final = _HEADER.size  # 61
_LOG_OVERHEAD: Final = 12  # base_offset + batch_length: what a reader needs to find the batch end
_MIN_BATCH_LENGTH: Final = _HEADER_SIZE - _LOG_OVERHEAD
_MAGIC_OFFSET: Final = 16
_CRC_OFFSET: Final = 17
_ATTRIBUTES_OFFSET: Final = 21
_LAST_DELTA_OFFSET: Final = 23
_MIN_RECORD_SIZE: Final = 6  # attributes + five one-byte varints
_OFFSET_LENGTH: Final = struct.Struct(">qi")
_INT32: Final = struct.Struct(">i")
_INT64: Final = struct.Struct(">q")

_CODEC_MASK: Final = 0x07
_TIMESTAMP_TYPE_BIT: Final = 0x08
_TRANSACTIONAL_BIT: Final = 0x10
_CONTROL_BIT: Final = 0x20
_CODECS: Final[tuple[Compression, ...]] = ("none", "gzip", "snappy", "lz4", "zstd")
_CODEC_IDS: Final[dict[str, int]] = {name: i for i, name in enumerate(_CODECS)}

_INT32_MAX: Final = 2**31 - 1
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

# Precomputed varint encodings: in real batches nearly every length, delta and count is
# small, so a tuple lookup replaces the per-byte loop on the hot path.
_TABLE_LIMIT: Final = 1 << 14


def _uvarint_slow(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_UVARINT: Final[tuple[bytes, ...]] = tuple(_uvarint_slow(i) for i in range(_TABLE_LIMIT))
_ZIGZAG_BYTE: Final[tuple[int, ...]] = tuple((b >> 1) ^ -(b & 1) for b in range(0x80))


def _zigzag_varint(value: int) -> bytes:
    """Zigzag varlong encoding of a signed 64-bit value."""
    zz = (value << 1) ^ (value >> 63)
    if zz < _TABLE_LIMIT:
        return _UVARINT[zz]
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{value} does not fit a signed 64-bit varlong")
    return _uvarint_slow(zz)


class _Malformed(Exception):
    """Internal: record-level decode failure, re-raised with batch context."""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
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
            raise _Malformed(f"varint at byte {pos - 10} is longer than 10 bytes")


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
    if count * _MIN_RECORD_SIZE > end - pos:
        raise _Malformed(f"{count} records cannot fit in {end - pos} bytes")
    zz = _ZIGZAG_BYTE
    slow = _read_varint
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
        if length < _MIN_RECORD_SIZE or record_end > end:
            raise _Malformed(f"record {index} has invalid length {length}")
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
            raise _Malformed(f"record {index} has key length {size}")
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
            raise _Malformed(f"record {index} has value length {size}")
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
            raise _Malformed(f"record {index} declares {length} bytes but its fields take a different size")
        record = _new_object(WireRecord)
        _set_offset(record, base_offset + offset_delta)
        _set_timestamp(record, base_timestamp + timestamp_delta if fixed_timestamp is None else fixed_timestamp)
        _set_key(record, key)
        _set_value(record, value)
        _set_headers(record, headers)
        append(record)
    if pos != end:
        raise _Malformed(f"{end - pos} unexpected bytes after the last of {count} records")
    return tuple(out)


def _decode_headers(
    buf: bytes, pos: int, record_end: int, count: int, index: int
) -> tuple[tuple[tuple[str, bytes | None], ...], int]:
    if count < 0 or count * 2 > record_end - pos:
        raise _Malformed(f"record {index} has invalid header count {count}")
    zz = _ZIGZAG_BYTE
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(count):
        b = buf[pos]
        if b < 0x80:
            size = zz[b]
            pos += 1
        else:
            size, pos = _read_varint(buf, pos)
        if size < 0:
            raise _Malformed(f"record {index} has a header key of length {size}")
        name = buf[pos : pos + size].decode()
        pos += size
        b = buf[pos]
        if b < 0x80:
            size = zz[b]
            pos += 1
        else:
            size, pos = _read_varint(buf, pos)
        if size >= 0:
            headers.append((name, buf[pos : pos + size]))
            pos += size
        elif size == -1:
            headers.append((name, None))
        else:
            raise _Malformed(f"record {index} has a header value of length {size}")
    return tuple(headers), pos


def _encode_headers(headers: tuple[tuple[str, bytes | None], ...]) -> bytes:
    table = _UVARINT
    count = len(headers)
    parts = [table[count << 1] if count < 8192 else _zigzag_varint(count)]
    append = parts.append
    for name, value in headers:
        raw = name.encode()
        size = len(raw)
        append(table[size << 1] if size < 8192 else _zigzag_varint(size))
        append(raw)
        if value is None:
            append(b"\x01")
        else:
            size = len(value)
            append(table[size << 1] if size < 8192 else _zigzag_varint(size))
            append(value)
    return b"".join(parts)


def _encode_records(records: Sequence[WireRecord], base_offset: int, base_timestamp: int) -> list[bytes]:
    table = _UVARINT
    varint = _zigzag_varint
    parts: list[bytes] = []
    extend = parts.extend
    previous_delta = -1
    for record in records:
        offset_delta = record.offset - base_offset
        if offset_delta <= previous_delta or offset_delta > _INT32_MAX:
            raise ValueError(
                f"record offset {record.offset} must be above the previous one and within "
                f"2**31-1 of base_offset {base_offset}"
            )
        previous_delta = offset_delta
        offset_bytes = table[offset_delta << 1] if offset_delta < 8192 else varint(offset_delta)
        timestamp_bytes = varint(record.timestamp - base_timestamp)
        key = record.key
        if key is None:
            key_len = 0
            key_bytes = b"\x01"
            key = b""
        else:
            key_len = len(key)
            key_bytes = table[key_len << 1] if key_len < 8192 else varint(key_len)
        value = record.value
        if value is None:
            value_len = 0
            value_bytes = b"\x01"
            value = b""
        else:
            value_len = len(value)
            value_bytes = table[value_len << 1] if value_len < 8192 else varint(value_len)
        headers = _encode_headers(record.headers) if record.headers else b"\x00"
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


def _lz4_compress(data: bytes) -> bytes:
    # Kafka's Java reader (KafkaLZ4BlockInputStream) only accepts independent blocks,
    # and cramjam's one-shot lz4.compress links them.
    compressor = cramjam.lz4.Compressor(block_linked=False, content_checksum=False)
    compressor.compress(data)
    return bytes(compressor.finish())


_XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
_XERIAL_HEADER_SIZE: Final = 16  # magic + int32 version + int32 min-compatible version


def _snappy_decompress(data: bytes) -> bytes:
    # Java clients (snappy-java's SnappyOutputStream) and kafka-python frame snappy data
    # in xerial blocks; librdkafka sends one raw block. Both appear on the wire.
    if not data.startswith(_XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(data))
    # The version fields are ignored: some producers write them little-endian.
    pos = _XERIAL_HEADER_SIZE
    end = len(data)
    if pos > end:
        raise _Malformed("xerial snappy header is truncated")
    blocks = []
    while pos < end:
        if end - pos < 4:
            raise _Malformed("xerial snappy block length is truncated")
        (size,) = _INT32.unpack_from(data, pos)
        pos += 4
        if size < 0 or pos + size > end:
            raise _Malformed(f"xerial snappy block of {size} bytes overruns the data")
        blocks.append(bytes(cramjam.snappy.decompress_raw(data[pos : pos + size])))
        pos += size
    return b"".join(blocks)


_COMPRESS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "gzip": lambda data: bytes(cramjam.gzip.compress(data, level=6)),
    "snappy": lambda data: bytes(cramjam.snappy.compress_raw(data)),
    "lz4": _lz4_compress,
    # Kafka's default zstd level; cramjam's own default (11) is several times slower.
    "zstd": lambda data: bytes(cramjam.zstd.compress(data, level=3)),
}
_DECOMPRESS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "gzip": lambda data: bytes(cramjam.gzip.decompress(data)),
    "snappy": _snappy_decompress,
    "lz4": lambda data: bytes(cramjam.lz4.decompress(data)),
    "zstd": lambda data: bytes(cramjam.zstd.decompress(data)),
}


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
    codec = _CODEC_IDS.get(compression)
    if codec is None:
        raise ValueError(f"unknown compression {compression!r}; expected one of {_CODECS}")
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
        body = _COMPRESS[compression](body)
    attributes = codec
    if timestamp_type == "log_append":
        attributes |= _TIMESTAMP_TYPE_BIT
    if transactional:
        attributes |= _TRANSACTIONAL_BIT
    if control:
        attributes |= _CONTROL_BIT
    fields = (
        base_offset,
        _MIN_BATCH_LENGTH + len(body),
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
        header = bytearray(_HEADER.pack(*fields))
    except struct.error as exc:
        raise ValueError(f"batch header field out of range: {exc}") from None
    crc = crc32c(body, crc32c(memoryview(header)[_ATTRIBUTES_OFFSET:]))
    struct.pack_into(">I", header, _CRC_OFFSET, crc)
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
    while total - pos >= _LOG_OVERHEAD:
        base_offset, length = _OFFSET_LENGTH.unpack_from(buf, pos)
        end = pos + _LOG_OVERHEAD + length
        if length < _MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"batch at byte {pos}: length {length} is below the {_MIN_BATCH_LENGTH}-byte v2 header",
                offset=base_offset,
            )
        if end > total:
            break
        batches.append(_decode_batch(buf, pos, end, verify_crc))
        pos = end
    if pos < total and not allow_truncated:
        raise CorruptRecordError(f"{total - pos} bytes at byte {pos} do not form a complete record batch")
    return batches


def _decode_batch(buf: bytes, pos: int, end: int, verify_crc: bool) -> RecordBatch:
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
    ) = _HEADER.unpack_from(buf, pos)
    where = f"batch at byte {pos} (base offset {base_offset})"
    if magic != 2:
        raise CorruptRecordError(f"{where}: magic {magic} is not supported, only 2", offset=base_offset)
    if verify_crc:
        actual = crc32c(memoryview(buf)[pos + _ATTRIBUTES_OFFSET : end])
        if actual != crc:
            raise CorruptRecordError(
                f"{where}: CRC-32C mismatch (stored {crc:#010x}, computed {actual:#010x})",
                offset=base_offset,
            )
    codec = attributes & _CODEC_MASK
    if codec >= len(_CODECS):
        raise CorruptRecordError(f"{where}: unknown compression codec id {codec}", offset=base_offset)
    if count < 0:
        raise CorruptRecordError(f"{where}: negative record count {count}", offset=base_offset)
    compression = _CODECS[codec]
    log_append = bool(attributes & _TIMESTAMP_TYPE_BIT)
    start = pos + _HEADER_SIZE
    try:
        if codec:
            try:
                body = _DECOMPRESS[compression](buf[start:end])
            except cramjam.DecompressionError as exc:
                raise _Malformed(f"{compression} decompression failed: {exc}") from None
            start, end, buf = 0, len(body), body
        # With LogAppendTime the broker stamps the batch once; record deltas are stale.
        records = _decode_records(
            buf, start, end, count, base_offset, base_timestamp, max_timestamp if log_append else None
        )
    except _Malformed as exc:
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
        is_transactional=bool(attributes & _TRANSACTIONAL_BIT),
        is_control=bool(attributes & _CONTROL_BIT),
        timestamp_type="log_append" if log_append else "create",
    )


def rebase(
    batch_bytes: bytes | bytearray | memoryview,
    new_base_offset: int,
    *,
    partition_leader_epoch: int | None = None,
) -> bytes:
    """Assign offsets to encoded batches without re-encoding them.

    ``batch_bytes`` holds one or more complete batches (a Produce ``records`` field); the
    first gets ``new_base_offset`` and each following batch starts right after the
    previous batch's last offset. ``partition_leader_epoch``, also outside the CRC, is
    stamped when given. Raises :class:`~streamlab.errors.CorruptRecordError` if the bytes
    are not a sequence of complete v2 batches.
    """
    if not 0 <= new_base_offset <= _INT64_MAX:
        raise ValueError(f"base offset {new_base_offset} is not a non-negative int64")
    if partition_leader_epoch is not None and not -(2**31) <= partition_leader_epoch <= _INT32_MAX:
        raise ValueError(f"partition leader epoch {partition_leader_epoch} is not an int32")
    out = bytearray(batch_bytes)
    total = len(out)
    if total == 0:
        raise CorruptRecordError("no record batch to rebase")
    pos = 0
    next_offset = new_base_offset
    while pos < total:
        if total - pos < _HEADER_SIZE:
            raise CorruptRecordError(f"{total - pos} bytes at byte {pos} are too short for a batch header")
        (length,) = _INT32.unpack_from(out, pos + 8)
        end = pos + _LOG_OVERHEAD + length
        if length < _MIN_BATCH_LENGTH or end > total:
            raise CorruptRecordError(f"batch at byte {pos}: length {length} does not fit the data")
        if out[pos + _MAGIC_OFFSET] != 2:
            raise CorruptRecordError(f"batch at byte {pos}: magic {out[pos + _MAGIC_OFFSET]} is not 2")
        (last_delta,) = _INT32.unpack_from(out, pos + _LAST_DELTA_OFFSET)
        if last_delta < 0 or next_offset + last_delta > _INT64_MAX:
            raise CorruptRecordError(f"batch at byte {pos}: last offset delta {last_delta} is invalid")
        _INT64.pack_into(out, pos, next_offset)
        if partition_leader_epoch is not None:
            _INT32.pack_into(out, pos + _LOG_OVERHEAD, partition_leader_epoch)
        next_offset += last_delta + 1
        pos = end
    return bytes(out)
