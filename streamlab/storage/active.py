"""The active segment: an append-only file of checksummed Arrow IPC record batches.

Frame layout (little-endian): ``b"SLB1" | u32 length | u32 crc32c(payload) | payload``,
where the payload is one Arrow IPC-serialised record batch. A crash can leave a torn
frame at the tail; :func:`scan` keeps every whole frame and the log cuts the file back to
the last one, so nothing half-written is ever visible and nothing acknowledged is lost
(acknowledgement happens only after the whole frame was written, and fsynced when asked).
Damage in the middle of the file is told apart from a torn tail: valid frames follow it.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import crc32c
import pyarrow as pa

from streamlab.errors import StorageError
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


def _frame_at(data: bytes, pos: int) -> pa.RecordBatch | None:
    """The batch of a whole, checksum-valid frame starting at ``pos``, else None."""
    if pos + _HEADER.size > len(data):
        return None
    magic, length, crc = _HEADER.unpack_from(data, pos)
    start, end = pos + _HEADER.size, pos + _HEADER.size + length
    if magic != MAGIC or end > len(data):
        return None
    payload = data[start:end]
    if crc32c.crc32c(payload) != crc:
        return None
    try:
        return pa.ipc.read_record_batch(pa.py_buffer(payload), RECORD_SCHEMA)
    except (pa.ArrowException, ValueError):
        return None  # a valid checksum over a payload that is not ours


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
    if pos + _HEADER.size > len(data):
        return None
    magic, length, _ = _HEADER.unpack_from(data, pos)
    start, end = pos + _HEADER.size, pos + _HEADER.size + length
    if magic != MAGIC or end > len(data):
        return None  # incomplete: a torn write
    try:
        batch = pa.ipc.read_record_batch(pa.py_buffer(data[start:end]), RECORD_SCHEMA)
        batch.validate(full=True)
    except (pa.ArrowException, ValueError):
        return None
    return batch


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
            os.ftruncate(self._fd, valid_length)  # cut a torn tail found by scan()
            os.fsync(self._fd)
        self.size = os.fstat(self._fd).st_size
        self._cv = threading.Condition(threading.Lock())
        self._written = 0  # appends so far
        self._synced = 0  # appends known durable
        self._syncing = False
        self._offline: str | None = None

    def append(self, data: bytes) -> None:
        """Append ``data`` whole, or leave the file as it was and raise :class:`StorageError`.

        A write cut short (disk full, I/O error) is truncated back to the last whole append
        before the error is raised, so later appends never land behind a torn frame (which
        recovery would cut, and everything after it). If even the truncation fails the file
        goes offline: every later append and sync is refused until it is reopened.
        """
        with self._cv:
            if self._offline is not None:
                raise StorageError(f"{self.path} is offline after a failed write ({self._offline}); reopen to recover")
            try:
                written = os.write(self._fd, data)
                while written < len(data):  # os.write may write less on signals / huge frames
                    written += os.write(self._fd, data[written:])
            except OSError as exc:
                self._undo_partial_write(exc)
                raise StorageError(f"could not write to {self.path}: {exc.strerror or exc}") from exc
            self.size += len(data)
            self._written += 1

    def _undo_partial_write(self, exc: OSError) -> None:
        try:
            os.ftruncate(self._fd, self.size)
        except OSError as again:
            self._offline = f"{exc.strerror or exc}; truncating back failed too: {again.strerror or again}"

    def sync(self) -> None:
        """Make every append so far durable (shared with concurrent callers)."""
        with self._cv:
            target = self._written
            while self._synced < target and self._fd >= 0:
                if self._offline is not None:
                    raise StorageError(f"could not make {self.path} durable: {self._offline}")
                if self._syncing:
                    self._cv.wait()
                    continue
                self._syncing = True
                goal, fd = self._written, self._fd
                self._cv.release()
                try:
                    os.fdatasync(fd)
                except OSError as exc:
                    # After a failed fsync the page cache can no longer be trusted to
                    # reach the disk (the "fsyncgate" lesson): nothing more goes to this file.
                    self._offline = f"fsync failed: {exc.strerror or exc}"
                    raise StorageError(f"could not make {self.path} durable: {exc.strerror or exc}") from exc
                finally:
                    self._cv.acquire()
                    self._syncing = False
                    self._cv.notify_all()
                self._synced = max(self._synced, goal)
            # A closed file was either synced by close() or sealed durably elsewhere.

    def truncate(self) -> None:
        """Empty the file durably (its content is safe elsewhere)."""
        with self._cv:
            while self._syncing:
                self._cv.wait()
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self.size = 0
            self._synced = self._written
            self._offline = None  # an empty file has no torn frame left to fear

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
