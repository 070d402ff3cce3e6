"""The active segment: an append-only file of checksummed Arrow IPC record batches.

Frame layout (little-endian): ``b"SLB1" | u32 length | u32 crc32c(payload) | payload``,
where the payload is one Arrow IPC-serialised record batch. A crash can leave a torn
frame at the tail; :func:`scan` keeps every whole frame and the log cuts the file back to
the last one, so nothing half-written is ever visible and nothing acknowledged is lost
(acknowledgement happens only after the whole frame was written, and fsynced when asked).
Damage in the middle of the file is told apart from a torn tail: valid frames follow it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import crc32c
import pyarrow as pa

from streamlab.model.schema import RECORD_SCHEMA

MAGIC = b"SLB1"
_HEADER = struct.Struct("<4sII")


def encode_frame(batch: pa.RecordBatch) -> bytes:
    payload = batch.serialize().to_pybytes()
    return _HEADER.pack(MAGIC, len(payload), crc32c.crc32c(payload)) + payload


@dataclass(frozen=True, slots=True)
class DamagedRange:
    """Bytes ``[start, end)`` of an active segment that hold no valid frame, between two
    valid ones: damage in the middle of the file, not a torn tail."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Scan:
    """What :func:`scan` found in an active segment file."""

    batches: list[pa.RecordBatch]
    valid_length: int  # bytes up to the end of the last valid frame
    damaged: list[DamagedRange]  # damage with valid frames after it
    after_damage: list[int]  # for each damaged range, the index of the first batch after it
    torn_tail: int  # bytes after the last valid frame (a write cut short by a crash)
    # A whole last frame that fails its checksum but still parses, with the offsets it
    # names following on: acknowledged data damaged in place, not a torn write.
    damaged_tail: DamagedRange | None = None
    damaged_tail_offsets: tuple[int, int] | None = None  # [first, end) of the damaged frame


def _payload_at(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The payload of a whole frame starting at ``pos`` and the crc32c its header gives,
    else None (no frame there, or one cut short: a torn write)."""
    if pos + _HEADER.size > len(data):
        return None
    magic, length, crc = _HEADER.unpack_from(data, pos)
    start, end = pos + _HEADER.size, pos + _HEADER.size + length
    if magic != MAGIC or end > len(data):
        return None
    return data[start:end], crc


def _batch_of(payload: bytes, *, validate: bool) -> pa.RecordBatch | None:
    try:
        batch = pa.ipc.read_record_batch(pa.py_buffer(payload), RECORD_SCHEMA)
        if validate:
            batch.validate(full=True)
    except (pa.ArrowException, ValueError):
        return None  # a payload that is not ours (under a valid checksum, or none checked)
    return batch


def _frame_at(data: bytes, pos: int) -> pa.RecordBatch | None:
    """The batch of a whole, checksum-valid frame starting at ``pos``, else None."""
    frame = _payload_at(data, pos)
    if frame is None or crc32c.crc32c(frame[0]) != frame[1]:
        return None
    return _batch_of(frame[0], validate=False)


def scan(path: Path) -> Scan:
    """Every whole, checksum-valid frame in ``path``, and where the others are.

    A bad frame followed by a valid one is damage in the middle (a flipped bit, a zeroed
    block): it is reported, never skipped silently, and the frames after it are kept. A bad
    frame with nothing valid after it is a torn tail: a write a crash cut short, which was
    never acknowledged, since acknowledgement waits for the whole frame.
    """
    data = path.read_bytes()
    batches: list[pa.RecordBatch] = []
    damaged: list[DamagedRange] = []
    after: list[int] = []
    pos = valid = 0
    while pos + _HEADER.size <= len(data):
        batch = _frame_at(data, pos)
        if batch is not None:
            batches.append(batch)
            pos = valid = _frame_end(data, pos)
            continue
        resume = _next_valid_frame(data, pos + 1)
        if resume is None:
            expected = _batch_end(batches[-1]) if batches else None
            unchecked = _unchecked_frame_at(data, pos)
            if unchecked is not None and unchecked.num_rows and (expected is None or _first(unchecked) == expected):
                end = _frame_end(data, pos)
                offsets = (_first(unchecked), _batch_end(unchecked))
                return Scan(batches, end, damaged, after, len(data) - end, DamagedRange(pos, end), offsets)
            break
        damaged.append(DamagedRange(pos, resume))
        after.append(len(batches))
        pos = resume
    return Scan(batches, valid, damaged, after, len(data) - valid)


def _first(batch: pa.RecordBatch) -> int:
    return int(batch.column(0)[0].as_py())


def _batch_end(batch: pa.RecordBatch) -> int:
    return _first(batch) + batch.num_rows


def _unchecked_frame_at(data: bytes, pos: int) -> pa.RecordBatch | None:
    """The batch of a whole frame at ``pos`` whose payload parses, checksum unchecked."""
    frame = _payload_at(data, pos)
    return None if frame is None else _batch_of(frame[0], validate=True)


def _frame_end(data: bytes, pos: int) -> int:
    _, length, _ = _HEADER.unpack_from(data, pos)
    return pos + _HEADER.size + int(length)


def _next_valid_frame(data: bytes, pos: int) -> int | None:
    while True:
        pos = data.find(MAGIC, pos)
        if pos < 0:
            return None
        if _frame_at(data, pos) is not None:
            return pos
        pos += 1
