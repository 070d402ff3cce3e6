"""The active segment: an append-only file of checksummed Arrow IPC record batches.

Frame layout (little-endian): ``b"SLB1" | u32 length | u32 crc32c(payload) | payload``,
where the payload is one Arrow IPC-serialised record batch. A crash can leave a torn
frame at the tail; :func:`recover` keeps every whole frame and cuts the file back to the
last one, so nothing half-written is ever visible and nothing acknowledged is lost
(acknowledgement happens only after the whole frame was written, and fsynced when asked).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import crc32c
import pyarrow as pa

from streamlab.storage.schema import RECORD_SCHEMA

MAGIC = b"SLB1"
_HEADER = struct.Struct("<4sII")


def encode_frame(batch: pa.RecordBatch) -> bytes:
    payload = batch.serialize().to_pybytes()
    return _HEADER.pack(MAGIC, len(payload), crc32c.crc32c(payload)) + payload


def recover(path: Path) -> tuple[list[pa.RecordBatch], int]:
    """Every whole, checksum-valid batch in ``path`` and the byte length they span.

    Reading stops at the first frame that is short, has a bad magic or a bad checksum:
    everything after a torn write is unacknowledged by construction.
    """
    data = path.read_bytes()
    batches: list[pa.RecordBatch] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, pos)
        start, end = pos + _HEADER.size, pos + _HEADER.size + length
        if magic != MAGIC or end > len(data):
            break
        payload = data[start:end]
        if crc32c.crc32c(payload) != crc:
            break
        batches.append(pa.ipc.read_record_batch(pa.py_buffer(payload), RECORD_SCHEMA))
        pos = end
    return batches, pos


class ActiveSegmentFile:
    """Appends frames to one file; ``sync=True`` makes them durable before returning."""

    def __init__(self, path: Path, *, valid_length: int | None = None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if valid_length is not None and os.fstat(self._fd).st_size != valid_length:
            os.ftruncate(self._fd, valid_length)  # cut a torn tail found by recover()
            os.fsync(self._fd)
        self.size = os.fstat(self._fd).st_size

    def append(self, frame: bytes) -> None:
        written = os.write(self._fd, frame)
        while written < len(frame):  # os.write may write less on signals / huge frames
            written += os.write(self._fd, frame[written:])
        self.size += len(frame)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
