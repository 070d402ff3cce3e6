"""Record batches as columns: the v2 codec of record_batch.py and batch_encoding.py without an object per record.

The server's Produce path wants columns (keys, values, timestamps) to store, and its Fetch
path has columns to send. Decoding, only the record boundaries need a sequential scan
(each record starts with its own length); every field inside the records is then read
for all records at once with numpy. Keys and values use Arrow's binary layout (int32
offsets into one data buffer), so the handlers wrap them without copying. Anything this
reader does not take (records with headers, malformed data) goes through the
record-by-record reader of record_batch.py, which returns the records or the error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from crc32c import crc32c

from streamlab.errors import CorruptRecordError
from streamlab.protocol import batch_layout as layout
from streamlab.protocol.batch_layout import TimestampType
from streamlab.protocol.compression import DECOMPRESS
from streamlab.protocol.record_batch import RecordBatch, decode_batch
from streamlab.protocol.varint import Malformed, read_varint, zigzag_varint

__all__ = [
    "COLUMNAR_ENCODE_MIN_RECORDS",
    "COLUMNAR_MIN_RECORDS",
    "ColumnBatch",
    "RecordColumns",
    "decode_batches_columns",
    "encode_batch_columns",
]

_CRC = struct.Struct(">I")

# Below this many records a batch is read record by record: numpy's fixed cost per call
# outweighs the per-record savings (measured crossover: about 150 records).
COLUMNAR_MIN_RECORDS = 150
# Encoding, the crossover is higher: the record-by-record writer joins views of the stored
# keys and values instead of copying them into Arrow first.
COLUMNAR_ENCODE_MIN_RECORDS = 200  # measured crossover: 150-250 records of ~100 bytes


@dataclass(frozen=True, slots=True)
class RecordColumns:
    """A batch's records as columns."""

    timestamps: np.ndarray  # int64, absolute (the batch's max_timestamp under LogAppendTime)
    offset_deltas: np.ndarray  # int64
    keys: pa.Array  # binary, null for a null key
    values: pa.Array  # binary

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """A decoded batch: ``batch`` holds the header fields; the records are in ``columns``,
    or (``columns`` None: some record has headers) in ``batch.records`` as usual."""

    batch: RecordBatch
    columns: RecordColumns | None

    def __len__(self) -> int:
        return len(self.batch.records) if self.columns is None else len(self.columns)


def decode_batches_columns(
    data: bytes | bytearray | memoryview,
    *,
    verify_crc: bool = True,
    allow_truncated: bool = True,
) -> list[ColumnBatch]:
    """Like :func:`decode_batches` (same checks, same errors), but records come as columns.

    A batch the columnar reader does not take (records with headers, small batches,
    anything malformed) goes through :func:`decode_batches`' reader, which returns its
    records (``columns`` None) or raises.
    """
    buf = data if isinstance(data, bytes) else bytes(data)
    out: list[ColumnBatch] = []
    pos = 0
    total = len(buf)
    while total - pos >= layout.LOG_OVERHEAD:
        base_offset, length = layout.OFFSET_LENGTH.unpack_from(buf, pos)
        end = pos + layout.LOG_OVERHEAD + length
        if length < layout.MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"batch at byte {pos}: length {length} is below the {layout.MIN_BATCH_LENGTH}-byte v2 header",
                offset=base_offset,
            )
        if end > total:
            break
        columnar = _columns_of(buf, pos, end, verify_crc)
        out.append(columnar if columnar is not None else ColumnBatch(decode_batch(buf, pos, end, verify_crc), None))
        pos = end
    if pos < total and not allow_truncated:
        raise CorruptRecordError(f"{total - pos} bytes at byte {pos} do not form a complete record batch")
    return out


def _columns_of(buf: bytes, pos: int, end: int, verify_crc: bool) -> ColumnBatch | None:
    """The batch at ``buf[pos:end]`` as columns; None when the record-by-record reader must
    take it (it then produces the records or the precise error)."""
    fields = layout.HEADER.unpack_from(buf, pos)
    base_offset, _, leader_epoch, magic, crc, attributes, last_delta, base_ts, max_ts, pid, epoch, seq, count = fields
    codec = attributes & layout.CODEC_MASK
    if magic != 2 or count < COLUMNAR_MIN_RECORDS or codec >= len(layout.CODECS):
        return None
    if verify_crc and crc32c(memoryview(buf)[pos + layout.ATTRIBUTES_OFFSET : end]) != crc:
        return None
    body, start = buf, pos + layout.HEADER_SIZE
    if codec:
        try:
            body = DECOMPRESS[layout.CODECS[codec]](buf[start:end])
        except Exception:
            return None
        start, end = 0, len(body)
    log_append = bool(attributes & layout.TIMESTAMP_TYPE_BIT)
    try:
        columns = _record_columns(body, start, end, count, base_ts, max_ts if log_append else None)
    except (Malformed, IndexError):
        return None
    if columns is None:
        return None
    header = RecordBatch(
        base_offset=base_offset, partition_leader_epoch=leader_epoch, magic=magic, crc=crc, attributes=attributes,
        last_offset_delta=last_delta, base_timestamp=base_ts, max_timestamp=max_ts, producer_id=pid,
        producer_epoch=epoch, base_sequence=seq, records=(), compression=layout.CODECS[codec],
        is_transactional=bool(attributes & layout.TRANSACTIONAL_BIT), is_control=bool(attributes & layout.CONTROL_BIT),
        timestamp_type="log_append" if log_append else "create",
    )  # fmt: skip
    return ColumnBatch(header, columns)


def _length_steps() -> np.ndarray:
    """For each pair of bytes (first | second << 8) at a record's start: the distance to the
    next record when its length varint takes one or two bytes (its size plus the length),
    else 0 (read it with read_varint)."""
    pair = np.arange(1 << 16, dtype=np.int64)
    first, second = pair & 0xFF, pair >> 8
    u = np.where(first < 0x80, first, (first & 0x7F) | (second << 7))
    steps = np.where(first < 0x80, 1, 2) + ((u >> 1) ^ -(u & 1))
    steps[(first >= 0x80) & (second >= 0x80)] = 0
    return steps


_LENGTH_STEPS_ARRAY = _length_steps()
_LENGTH_STEPS = _LENGTH_STEPS_ARRAY.tolist()

# Finding record boundaries from the zero bytes is numpy work on every byte of the batch;
# walking the records costs about 130 ns per record: the first pays while records are small.
_GUESS_MAX_BYTES_PER_RECORD = 1024
_GUESS_MAX_ZEROS_PER_RECORD = 4  # beyond, the payloads are full of zeros: walk instead


def _record_starts(body: bytes, arr: np.ndarray, pos: int, end: int, count: int) -> np.ndarray | None:
    """Where each record's length varint starts; None if the records do not tile the body."""
    if count * layout.MIN_RECORD_SIZE > end - pos:
        return None
    if end - pos <= count * _GUESS_MAX_BYTES_PER_RECORD:
        starts = _guessed_starts(body, arr, pos, end, count)
        if starts is not None:
            return starts
    return _walked_starts(body, pos, end, count)


def _guessed_starts(body: bytes, arr: np.ndarray, pos: int, end: int, count: int) -> np.ndarray | None:
    """:func:`_record_starts` without a loop over records, for records without headers.

    Such a record ends with its header count, a zero byte, so every record but the first
    starts right after a zero, and its one- or two-byte length (at least MIN_RECORD_SIZE)
    is followed by its attributes, zero too: the places that look so are the candidates
    (zeros inside keys and values add a few false ones). Each candidate's length says
    where the next record would start, and the records are the first one and the
    candidates another candidate points to. That is a guess (a false candidate may point
    to another), so it is kept only if it is exactly the walk the loop would make: each
    record's next is the following one, the last one's is ``end``, and there are
    ``count``. Anything else (headers, longer lengths, bad data) returns None and the
    records are walked one by one.
    """
    if end - pos < 8:
        return None
    # the zero before each record but the first; nothing can start in the last 3 bytes
    candidates = np.flatnonzero(arr[pos : end - 4] == 0)
    if len(candidates) > _GUESS_MAX_ZEROS_PER_RECORD * count:
        return None
    candidates += pos + 1
    # Four bytes from each candidate at once, through a little-endian uint32 view at
    # every byte: the length varint's two bytes and the attributes after it.
    quads = np.ndarray((end - 3,), dtype="<u4", buffer=body, strides=(1,))[candidates]
    steps = _LENGTH_STEPS_ARRAY[quads & 0xFFFF]
    two_bytes = (quads & 0x80) != 0
    attributes = np.where(two_bytes, quads >> 16, quads >> 8) & 0xFF
    plausible = np.flatnonzero((steps >= two_bytes + (1 + layout.MIN_RECORD_SIZE)) & (attributes == 0))
    candidates, nexts = candidates[plausible], candidates[plausible] + steps[plausible]
    first_next = pos + _LENGTH_STEPS[body[pos] | (body[pos + 1] << 8)]
    if first_next <= pos or first_next > end:
        return None
    # The candidates some candidate (or the first record) points to.
    at = np.searchsorted(candidates, nexts)
    inside = at < len(candidates)
    linked = at[inside][candidates[at[inside]] == nexts[inside]]
    pointed = np.zeros(len(candidates), dtype=bool)
    pointed[linked] = True
    first_at = np.searchsorted(candidates, first_next)
    if first_at < len(candidates) and candidates[first_at] == first_next:
        pointed[first_at] = True
    records = np.flatnonzero(pointed)
    if len(records) != count - 1:
        return None
    starts = np.empty(count, dtype=np.int64)
    starts[0] = pos
    starts[1:] = candidates[records]
    following = nexts[records]
    if (following[-1] if len(following) else first_next) != end:
        return None
    if count > 1 and (starts[1] != first_next or not np.array_equal(following[:-1], starts[2:])):
        return None
    return starts


def _walked_starts(body: bytes, pos: int, end: int, count: int) -> np.ndarray | None:
    """:func:`_record_starts` record by record: a table lookup per record (a step of 0 is
    a length of -1 or a varint of three bytes or more, both read the long way)."""
    steps = _LENGTH_STEPS
    positions: list[int] = []
    add = positions.append
    for _ in range(count):
        add(pos)
        step = steps[body[pos] | (body[pos + 1] << 8)]
        if step:
            pos += step
        else:
            length, pos = read_varint(body, pos)
            pos += length
    return np.array(positions, dtype=np.int64) if pos == end else None


def _varints(arr: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zigzag varints starting at each position of ``at``: (values, positions after them)."""
    # Most fields of most records take one or two bytes: those are read in a few numpy
    # calls (their fixed cost is most of the work for a batch of a few hundred records).
    first = arr.take(at, mode="clip")
    if not len(first) or first.max() < 0x80:
        u = first.astype(np.int64)
        return (u >> 1) ^ -(u & 1), at + 1
    two = first >= 0x80
    second = arr.take(at + 1, mode="clip")
    if not (two & (second >= 0x80)).any():
        u = (first & 0x7F).astype(np.int64) | (second.astype(np.int64) << 7) * two
        return (u >> 1) ^ -(u & 1), at + 1 + two
    return _long_varints(arr, at)


def _long_varints(arr: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_varints` for any length up to 10 bytes."""
    last = len(arr) - 1
    b = arr[np.minimum(at, last)].astype(np.uint64)
    result = b & np.uint64(0x7F)
    size = np.ones(len(at), dtype=np.int64)
    more = np.flatnonzero(b >= 0x80)
    shift = 7
    while len(more):
        if shift > 63:
            raise Malformed("a varint is longer than 10 bytes")
        b = arr[np.minimum(at[more] + size[more], last)].astype(np.uint64)
        result[more] |= (b & np.uint64(0x7F)) << np.uint64(shift)
        size[more] += 1
        more = more[b >= 0x80]
        shift += 7
    values = (result >> np.uint64(1)).astype(np.int64) ^ -(result & np.uint64(1)).astype(np.int64)
    return values, at + size


def _slices(body: bytes, bounds: np.ndarray, valid: tuple[np.ndarray, ...]) -> list[pa.Array]:
    """Binary arrays of byte ranges of ``body``.

    ``bounds`` holds, per record, k (start, end) pairs in order (disjoint, ascending). Seen
    as offsets, they make one binary array over ``body`` whose elements alternate between
    the wanted ranges and the bytes between them; Arrow's ``take`` then copies each wanted
    column out in C. ``valid[j]`` is False where range j of a record is null."""
    n, k = len(bounds), bounds.shape[1] // 2
    flat = bounds.ravel()
    dtype = np.int32 if (n == 0 or flat[-1] < 2**31) else np.int64
    kind = pa.binary() if dtype == np.int32 else pa.large_binary()
    view = pa.Array.from_buffers(kind, len(flat) - 1, [None, pa.py_buffer(flat.astype(dtype)), pa.py_buffer(body)])
    out = []
    for j in range(k):
        positions = np.arange(2 * j, 2 * k * n, 2 * k, dtype=np.int64)
        index = pa.array(positions) if valid[j].all() else pa.array(positions, mask=~valid[j])
        taken = view.take(index)
        out.append(taken if kind == pa.binary() else taken.cast(pa.binary()))
    return out


def _record_columns(
    body: bytes, pos: int, end: int, count: int, base_timestamp: int, fixed_timestamp: int | None
) -> RecordColumns | None:
    arr = np.frombuffer(body, dtype=np.uint8)
    positions = _record_starts(body, arr, pos, end, count)
    if positions is None:
        return None
    lengths, starts = _varints(arr, positions)
    if (lengths < layout.MIN_RECORD_SIZE).any():
        return None
    ends = starts + lengths
    timestamp_deltas, at = _varints(arr, starts + 1)  # + 1: the record attributes byte
    offset_deltas, at = _varints(arr, at)
    key_lengths, at = _varints(arr, at)
    key_starts = at
    at = at + np.maximum(key_lengths, 0)
    value_lengths, at = _varints(arr, at)
    value_starts = at
    at = at + np.maximum(value_lengths, 0)
    header_counts, at = _varints(arr, at)
    if (header_counts != 0).any() or not np.array_equal(at, ends):
        return None  # headers, or fields that do not add up: the record reader decides
    if (key_lengths < -1).any() or (value_lengths < -1).any():
        return None
    key_ends, value_ends = key_starts + np.maximum(key_lengths, 0), value_starts + np.maximum(value_lengths, 0)
    bounds = np.stack([key_starts, key_ends, value_starts, value_ends], axis=1)
    keys, values = _slices(body, bounds, (key_lengths >= 0, value_lengths >= 0))
    if fixed_timestamp is None:
        timestamps = timestamp_deltas + base_timestamp
    else:
        timestamps = np.full(count, fixed_timestamp, dtype=np.int64)
    return RecordColumns(timestamps, offset_deltas, keys, values)


# Columnar encoding ----------------------------------------------------------------------------
# A record is: length | attributes (0) | timestamp delta | offset delta | key length | key
# | value length | value | headers. The varints are written for all records at once into
# two small binary columns (everything before the key; the value length), and Arrow joins
# them with the keys, values and header sections element-wise: the joined column's data
# buffer is the records section of the batch.

_NO_HEADERS = b"\x00"  # a header count of zero


def _zigzag(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.int64)
    return ((values << 1) ^ (values >> 63)).view(np.uint64)


def _varint_sizes(u: np.ndarray) -> np.ndarray:
    sizes = np.ones(len(u), dtype=np.int64)
    for k in range(1, 10):
        sizes += u >= np.uint64(1 << (7 * k))
    return sizes


def _put_varints(out: np.ndarray, at: np.ndarray, u: np.ndarray, sizes: np.ndarray) -> None:
    for k in range(int(sizes.max()) if len(sizes) else 0):
        chosen = np.flatnonzero(sizes > k)
        byte = (u[chosen] >> np.uint64(7 * k)) & np.uint64(0x7F)
        byte |= np.where(sizes[chosen] - 1 > k, np.uint64(0x80), np.uint64(0))
        out[at[chosen] + k] = byte.astype(np.uint8)


def _binary_from(data: np.ndarray, lengths: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _lengths(array: pa.Array) -> np.ndarray:
    """Byte length of each element, -1 for null."""
    lengths = np.asarray(pc.fill_null(pc.binary_length(array), -1), dtype=np.int64)
    return lengths


def _views(array: pa.Array | pa.ChunkedArray) -> list[memoryview | None]:
    """Each element's bytes as a view into Arrow's data buffer (no copy), None for null."""
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    out: list[memoryview | None] = []
    for chunk in chunks:
        if chunk.type != pa.binary():
            chunk = chunk.cast(pa.binary())
        n = len(chunk)
        if not n:
            continue
        _, offsets_buffer, data_buffer = chunk.buffers()
        ends = np.frombuffer(offsets_buffer, dtype=np.int32)[chunk.offset : chunk.offset + n + 1].tolist()
        data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
        valid = chunk.is_valid().to_pylist() if chunk.null_count else [True] * n
        out.extend(data[ends[i] : ends[i + 1]] if valid[i] else None for i in range(n))
    return out


def _encode_few(
    offsets: list[int],
    timestamps: list[int],
    keys: list[memoryview | None],
    values: list[memoryview | None],
    headers: list[bytes] | None,
    max_bytes: int | None,
    at_least_one: bool,
    partition_leader_epoch: int,
    timestamp_type: TimestampType,
) -> bytes:
    """:func:`encode_batch_columns` record by record, for a few records: numpy's fixed cost
    per call (about 1.5 ms a batch) would dominate, and large keys and values are copied
    once, into the answer, from views of the stored columns."""
    base_offset, base_timestamp = offsets[0], timestamps[0]
    parts: list[bytes | memoryview] = []
    used = layout.HEADER_SIZE
    count = 0
    for i, offset in enumerate(offsets):
        key, value = keys[i], values[i]
        head = b"".join((b"\x00", zigzag_varint(timestamps[i] - base_timestamp), zigzag_varint(offset - base_offset),
                         b"\x01" if key is None else zigzag_varint(len(key))))  # fmt: skip
        value_length = b"\x01" if value is None else zigzag_varint(len(value))
        section = _NO_HEADERS if headers is None else headers[i]
        body = len(head) + (0 if key is None else len(key)) + len(value_length) + len(section)
        body += 0 if value is None else len(value)
        length = zigzag_varint(body)
        if max_bytes is not None and used + len(length) + body > max_bytes and (count or not at_least_one):
            break
        parts += (length, head)
        if key is not None:
            parts.append(key)
        parts.append(value_length)
        if value is not None:
            parts.append(value)
        parts.append(section)
        used += len(length) + body
        count += 1
    if not count:
        return b""
    attributes = layout.TIMESTAMP_TYPE_BIT if timestamp_type == "log_append" else 0
    last_delta = offsets[count - 1] - base_offset
    fields = (base_offset, used - layout.LOG_OVERHEAD, partition_leader_epoch, 2, 0, attributes, last_delta,
              base_timestamp, max(timestamps[:count]), -1, -1, -1, count)  # fmt: skip
    header = bytearray(layout.HEADER.pack(*fields))
    crc = crc32c(memoryview(header)[layout.ATTRIBUTES_OFFSET :])
    for part in parts:
        crc = crc32c(part, crc)
    _CRC.pack_into(header, layout.CRC_OFFSET, crc)
    return b"".join((header, *parts))


def encode_batch_columns(
    offsets: np.ndarray,
    timestamps: np.ndarray,
    keys: pa.Array | pa.ChunkedArray,
    values: pa.Array | pa.ChunkedArray,
    headers: pa.Array | None = None,
    *,
    max_bytes: int | None = None,
    at_least_one: bool = True,
    partition_leader_epoch: int = -1,
    timestamp_type: TimestampType = "create",
) -> bytes:
    """One uncompressed v2 batch of the records given as columns, the same bytes as
    :func:`~streamlab.protocol.batch_encoding.encode_batch` would write.

    ``offsets`` ascend (gaps allowed) and the first is the base offset. ``headers`` holds
    each record's encoded header section (count and entries, see ``encode_headers``);
    None means no record has headers. With ``max_bytes`` only the records that fit are
    encoded (at least one if ``at_least_one``); b"" when none is.
    """
    n = len(offsets)
    if n == 0:
        return b""
    offsets = np.asarray(offsets, dtype=np.int64)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    if n < COLUMNAR_ENCODE_MIN_RECORDS:
        sections = None if headers is None else headers.to_pylist()
        return _encode_few(offsets.tolist(), timestamps.tolist(), _views(keys), _views(values), sections,
                           max_bytes, at_least_one, partition_leader_epoch, timestamp_type)  # fmt: skip
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    key_lengths, value_lengths = _lengths(keys), _lengths(values)
    header_lengths = (
        np.ones(n, dtype=np.int64) if headers is None else np.asarray(pc.binary_length(headers), dtype=np.int64)
    )
    base_offset, base_timestamp = int(offsets[0]), int(timestamps[0])
    u_timestamp, u_offset = _zigzag(timestamps - base_timestamp), _zigzag(offsets - base_offset)
    u_key, u_value = _zigzag(key_lengths), _zigzag(value_lengths)
    s_timestamp, s_offset = _varint_sizes(u_timestamp), _varint_sizes(u_offset)
    s_key, s_value = _varint_sizes(u_key), _varint_sizes(u_value)
    body = (
        1 + s_timestamp + s_offset + s_key + np.maximum(key_lengths, 0)
        + s_value + np.maximum(value_lengths, 0) + header_lengths
    )  # fmt: skip
    u_body = _zigzag(body)
    s_body = _varint_sizes(u_body)
    if max_bytes is not None:
        fits = int(np.searchsorted(np.cumsum(s_body + body) + layout.HEADER_SIZE, max_bytes, side="right"))
        n = max(fits, 1 if at_least_one else 0)
        if n == 0:
            return b""
        if n < len(offsets):
            cut = slice(0, n)
            offsets, timestamps, keys, values = offsets[cut], timestamps[cut], keys.slice(0, n), values.slice(0, n)
            headers = None if headers is None else headers.slice(0, n)
            u_timestamp, u_offset, u_key, u_value, u_body = (
                u_timestamp[cut],
                u_offset[cut],
                u_key[cut],
                u_value[cut],
                u_body[cut],
            )
            s_timestamp, s_offset, s_key, s_value, s_body = (
                s_timestamp[cut],
                s_offset[cut],
                s_key[cut],
                s_value[cut],
                s_body[cut],
            )
    # Everything before the key: length, attributes, timestamp delta, offset delta, key length.
    prefix_lengths = s_body + 1 + s_timestamp + s_offset + s_key
    prefix = np.zeros(int(prefix_lengths.sum()), dtype=np.uint8)
    at = np.zeros(n, dtype=np.int64)
    np.cumsum(prefix_lengths[:-1], out=at[1:])
    _put_varints(prefix, at, u_body, s_body)
    at = at + s_body + 1  # the attributes byte stays 0
    _put_varints(prefix, at, u_timestamp, s_timestamp)
    at = at + s_timestamp
    _put_varints(prefix, at, u_offset, s_offset)
    _put_varints(prefix, at + s_offset, u_key, s_key)
    middle = np.zeros(int(s_value.sum()), dtype=np.uint8)
    at = np.zeros(n, dtype=np.int64)
    np.cumsum(s_value[:-1], out=at[1:])
    _put_varints(middle, at, u_value, s_value)
    empty = pa.scalar(b"", pa.binary())
    joined = pc.binary_join_element_wise(
        _binary_from(prefix, prefix_lengths),
        pc.fill_null(keys.cast(pa.binary()), empty),
        _binary_from(middle, s_value),
        pc.fill_null(values.cast(pa.binary()), empty),
        pa.scalar(_NO_HEADERS, pa.binary()) if headers is None else headers,
        empty,
    )
    ends = joined.buffers()[1]
    start = int.from_bytes(ends[joined.offset * 4 : joined.offset * 4 + 4], "little", signed=True)
    stop = int.from_bytes(ends[(joined.offset + n) * 4 : (joined.offset + n + 1) * 4], "little", signed=True)
    records = memoryview(joined.buffers()[2])[start:stop]
    attributes = layout.TIMESTAMP_TYPE_BIT if timestamp_type == "log_append" else 0
    last_delta, max_timestamp = int(offsets[-1]) - base_offset, int(timestamps.max())
    fields = (base_offset, layout.MIN_BATCH_LENGTH + len(records), partition_leader_epoch, 2, 0, attributes, last_delta,
              base_timestamp, max_timestamp, -1, -1, -1, n)  # fmt: skip
    header = bytearray(layout.HEADER.pack(*fields))
    crc = crc32c(records, crc32c(memoryview(header)[layout.ATTRIBUTES_OFFSET :]))
    _CRC.pack_into(header, layout.CRC_OFFSET, crc)
    return bytes(header) + records
