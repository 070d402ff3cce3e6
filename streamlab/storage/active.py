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
import threading
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


class AppendFile:
    """An append-only file whose appends become durable in shared ``fdatasync`` rounds.

    :meth:`sync` returns once every append made before the call is on stable storage.
    Callers that ask while a round is running wait for it and then, if it started before
    their data was written, start the next one together: however many threads append and
    sync, a file sees at most one ``fdatasync`` at a time and each covers every append
    before it (group commit). The fsync releases the GIL and no other lock is held, so
    appends go on meanwhile and syncs of different files run in parallel.
    """

    def __init__(self, path: Path, *, valid_length: int | None = None, flags: int = os.O_RDWR) -> None:
        self.path = path
        self._fd = os.open(path, flags | os.O_CREAT | os.O_APPEND, 0o644)
        if valid_length is not None and os.fstat(self._fd).st_size != valid_length:
            os.ftruncate(self._fd, valid_length)  # cut a torn tail found by recover()
            os.fsync(self._fd)
        self.size = os.fstat(self._fd).st_size
        self._cv = threading.Condition(threading.Lock())
        self._written = 0  # appends so far
        self._synced = 0  # appends known durable
        self._syncing = False

    def append(self, data: bytes) -> None:
        with self._cv:
            written = os.write(self._fd, data)
            while written < len(data):  # os.write may write less on signals / huge frames
                written += os.write(self._fd, data[written:])
            self.size += len(data)
            self._written += 1

    def sync(self) -> None:
        """Make every append so far durable (shared with concurrent callers)."""
        with self._cv:
            target = self._written
            while self._synced < target and self._fd >= 0:
                if self._syncing:
                    self._cv.wait()
                    continue
                self._syncing = True
                goal, fd = self._written, self._fd
                self._cv.release()
                try:
                    os.fdatasync(fd)
                finally:
                    self._cv.acquire()
                    self._syncing = False
                    self._cv.notify_all()
                self._synced = max(self._synced, goal)
            # A closed file was either synced by close() or sealed durably elsewhere.

    def close(self, *, durable_elsewhere: bool = False) -> None:
        """Close the file; unless its data is ``durable_elsewhere``, sync what is pending."""
        with self._cv:
            while self._syncing:
                self._cv.wait()
            if self._fd < 0:
                return
            if self._synced < self._written and not durable_elsewhere:
                os.fdatasync(self._fd)
            self._synced = self._written
            os.close(self._fd)
            self._fd = -1
            self._cv.notify_all()


ActiveSegmentFile = AppendFile  # the active segment: frames appended by the log
