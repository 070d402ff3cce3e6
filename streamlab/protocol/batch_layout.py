"""Kafka RecordBatch v2 (magic 2): the batch header's layout and attribute bits.

Layout (all integers big-endian; see Kafka's ``DefaultRecordBatch``)::

    base_offset int64 | batch_length int32 | partition_leader_epoch int32 | magic int8
    | crc uint32 | attributes int16 | last_offset_delta int32 | base_timestamp int64
    | max_timestamp int64 | producer_id int64 | producer_epoch int16 | base_sequence int32
    | record_count int32 | records...

The CRC-32C covers everything from ``attributes`` to the end, so the broker can rewrite
``base_offset`` and ``partition_leader_epoch`` without re-encoding (:func:`rebase`). Shared by the
record-by-record codec (record_batch.py decodes, batch_encoding.py encodes) and the columnar one (batch_columns.py).
"""

from __future__ import annotations

import struct
from typing import Final, Literal

from streamlab.errors import CorruptRecordError

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
TimestampType = Literal["create", "log_append"]

HEADER: Final = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE: Final = HEADER.size  # 61
LOG_OVERHEAD: Final = 12  # base_offset + batch_length: what a reader needs to find the batch end
MIN_BATCH_LENGTH: Final = HEADER_SIZE - LOG_OVERHEAD
MAGIC_OFFSET: Final = 16
CRC_OFFSET: Final = 17
ATTRIBUTES_OFFSET: Final = 21
LAST_DELTA_OFFSET: Final = 23
MIN_RECORD_SIZE: Final = 6  # attributes + five one-byte varints
OFFSET_LENGTH: Final = struct.Struct(">qi")
INT32: Final = struct.Struct(">i")
INT64: Final = struct.Struct(">q")

CODEC_MASK: Final = 0x07
TIMESTAMP_TYPE_BIT: Final = 0x08
TRANSACTIONAL_BIT: Final = 0x10
CONTROL_BIT: Final = 0x20
CODECS: Final[tuple[Compression, ...]] = ("none", "gzip", "snappy", "lz4", "zstd")
CODEC_IDS: Final[dict[str, int]] = {name: i for i, name in enumerate(CODECS)}

INT32_MAX: Final = 2**31 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


REBASED_HEAD_SIZE: Final = LOG_OVERHEAD + 4  # base offset, batch length, partition leader epoch
_REBASED_HEAD: Final = struct.Struct(">qii")


def rebased_head(batch_bytes: bytes | memoryview, new_base_offset: int, *, partition_leader_epoch: int) -> bytes:
    """The first :data:`REBASED_HEAD_SIZE` bytes of :func:`rebase` of exactly one batch;
    the rest of the batch is unchanged, so a writer sends this head and the batch's own
    bytes after it instead of copying the whole batch. Checks and errors as :func:`rebase`.
    """
    total = len(batch_bytes)
    if total < HEADER_SIZE:
        raise CorruptRecordError(f"{total} bytes are too short for a batch header")
    (length,) = INT32.unpack_from(batch_bytes, 8)
    if length < MIN_BATCH_LENGTH or LOG_OVERHEAD + length != total:
        raise CorruptRecordError(f"batch length {length} does not match the {total} bytes given")
    if batch_bytes[MAGIC_OFFSET] != 2:
        raise CorruptRecordError(f"batch magic {batch_bytes[MAGIC_OFFSET]} is not 2")
    (last_delta,) = INT32.unpack_from(batch_bytes, LAST_DELTA_OFFSET)
    if not 0 <= new_base_offset <= INT64_MAX or last_delta < 0 or new_base_offset + last_delta > INT64_MAX:
        raise CorruptRecordError(f"offsets {new_base_offset} + {last_delta} do not fit an int64")
    return _REBASED_HEAD.pack(new_base_offset, length, partition_leader_epoch)


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
    if not 0 <= new_base_offset <= INT64_MAX:
        raise ValueError(f"base offset {new_base_offset} is not a non-negative int64")
    if partition_leader_epoch is not None and not -(2**31) <= partition_leader_epoch <= INT32_MAX:
        raise ValueError(f"partition leader epoch {partition_leader_epoch} is not an int32")
    out = bytearray(batch_bytes)
    total = len(out)
    if total == 0:
        raise CorruptRecordError("no record batch to rebase")
    pos = 0
    next_offset = new_base_offset
    while pos < total:
        if total - pos < HEADER_SIZE:
            raise CorruptRecordError(f"{total - pos} bytes at byte {pos} are too short for a batch header")
        (length,) = INT32.unpack_from(out, pos + 8)
        end = pos + LOG_OVERHEAD + length
        if length < MIN_BATCH_LENGTH or end > total:
            raise CorruptRecordError(f"batch at byte {pos}: length {length} does not fit the data")
        if out[pos + MAGIC_OFFSET] != 2:
            raise CorruptRecordError(f"batch at byte {pos}: magic {out[pos + MAGIC_OFFSET]} is not 2")
        (last_delta,) = INT32.unpack_from(out, pos + LAST_DELTA_OFFSET)
        if last_delta < 0 or next_offset + last_delta > INT64_MAX:
            raise CorruptRecordError(f"batch at byte {pos}: last offset delta {last_delta} is invalid")
        INT64.pack_into(out, pos, next_offset)
        if partition_leader_epoch is not None:
            INT32.pack_into(out, pos + LOG_OVERHEAD, partition_leader_epoch)
        next_offset += last_delta + 1
        pos = end
    return bytes(out)
