"""The raw-batch store: record batches as producers sent them, beside a partition's log.

Rows are the log's truth; this is a cache of the wire form, so that Fetch can hand a
consumer the producer's own batches (compressed, same boundaries, producer id, epoch and
sequence, transactional flag) instead of re-encoding rows. Whoever reads an entry checks
that the log still holds every one of its offsets (``broker.batch_passthrough``); an entry
missing, torn or failing a check only means the rows are encoded instead.

Layout, in the partition's folder, a pair of files per roll::

    wire-<base offset, 20 digits>.batches   the batches back to back, in offset order
    wire-<base offset, 20 digits>.index     an entry per batch: base offset, last offset,
                                            position, byte length, and the CRC-32C of those

The batches carry the broker's base offset and a partition leader epoch of 0, written in
(both lie before the batch's CRC, which stays valid): the ``.batches`` file is what a
Kafka log segment holds, so a run of batches that follow on is one range of it, served
from a memory map of the file with no copy. The index entry's CRC guards what the batch's
own CRC does not cover (its offsets and length): a flipped bit can never make a batch
claim other offsets. Nothing is fsynced. Files roll at :data:`ROLL_BYTES`; a pair whose
entries all lie below the log start (retention, DeleteRecords) is removed.

Offsets are never reused while a log is open; after a crash they can be (the log keeps
only what was fsynced, this store whatever the OS wrote). So the store is told, when the
log opens, the high watermark recovery settled on, and drops every entry at or past it
when it is first loaded. Files are cut only then and after a failed write, and never
below an entry in the index, so no mapped range ever lies past the end of its file.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import mmap
import os
import struct
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import crc32c

from streamlab.errors import CorruptRecordError
from streamlab.protocol import batch_layout as layout

log = logging.getLogger("streamlab.storage")

ROLL_BYTES: Final = 16 * 1024 * 1024
_ENTRY: Final = struct.Struct(">qqqiI")  # base, last, position, byte length, crc32c of the four
_COUNT_OFFSET: Final = 57  # the batch header's record count
_PREFIX: Final = "wire-"
_BATCHES: Final = ".batches"
_INDEX: Final = ".index"
_MAP_AT_LEAST: Final = 64 * 1024  # smaller runs are read: a copy this small is cheaper than a mapping
LEADER_EPOCH: Final = 0  # what Fetch puts in every batch it encodes


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """One stored batch: its offsets ``base..last`` and where its bytes are."""

    base: int
    last: int
    count: int
    path: Path  # the .batches file
    position: int
    length: int


@dataclass(frozen=True, slots=True)
class BatchRun:
    """Stored batches whose offsets follow on, with their bytes back to back in ``data``."""

    entries: list[StoredBatch]
    data: memoryview

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[tuple[StoredBatch, memoryview]]:
        at = 0
        for entry in self.entries:
            yield entry, self.data[at : at + entry.length]
            at += entry.length

    def head(self, n: int) -> memoryview:
        """The bytes of the first ``n`` batches."""
        return self.data[: sum(entry.length for entry in self.entries[:n])]


_NOTHING: Final = BatchRun([], memoryview(b""))


def _batches_path(directory: Path, base: int) -> Path:
    return directory / f"{_PREFIX}{base:020d}{_BATCHES}"


def _index_of(batches: Path) -> Path:
    return batches.with_suffix(_INDEX)


def _entry(base: int, last: int, position: int, length: int) -> bytes:
    head = _ENTRY.pack(base, last, position, length, 0)
    return head[:-4] + crc32c.crc32c(head[:-4]).to_bytes(4, "big")


class WireBatchStore:
    """One partition's stored batches. Thread-safe. Each file is opened once and held until
    :meth:`close` or until it is dropped; reads and writes go through the store's lock, so
    no reader ever holds a descriptor that was closed (and maybe reused) meanwhile."""

    def __init__(self, directory: Path, *, valid_below: int, roll_bytes: int = ROLL_BYTES) -> None:
        self._dir = directory
        self._roll_bytes = roll_bytes
        self._valid_below = valid_below  # the log's high watermark when it was opened
        self._lock = threading.Lock()
        self._loaded = False
        self._bases = array("q")
        self._lasts = array("q")
        self._positions = array("q")
        self._lengths = array("q")
        self._file_of = array("q")  # index into self._files
        self._files: list[Path] = []
        self._first_entry: list[int] = []  # per file, its first entry's index
        self._tail_size = 0  # bytes of the last file
        self._fds: dict[Path, int] = {}
        self._tail_fds: tuple[int, int] | None = None  # the last file's (batches, index): no lookup per write
        self._closed = False

    # loading -----------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        names = self._names()
        for orphan in set(self._dir.glob(f"{_PREFIX}*{_BATCHES}")) - set(names):
            orphan.unlink(missing_ok=True)  # no index: a crash at a roll, or the layout before indexes
        for path in names:
            size = self._scan(path)
            if size == 0:
                path.unlink(missing_ok=True)
                _index_of(path).unlink(missing_ok=True)
                continue
            self._tail_size = size

    def _names(self) -> list[Path]:
        """The .batches files that have an index, in offset order."""
        indexes = self._dir.glob(f"{_PREFIX}*{_INDEX}")
        return sorted(p.with_suffix(_BATCHES) for p in indexes if p.name[len(_PREFIX) :][:20].isdigit())

    def _scan(self, path: Path) -> int:
        """Index ``path``'s sound entries; cut both files after the last one. Returns the
        size of the batches kept."""
        first = len(self._bases)
        kept = end = 0  # index bytes, batch bytes
        try:
            index = _index_of(path).read_bytes()
            size = path.stat().st_size if path.exists() else 0
            for at in range(0, len(index) - _ENTRY.size + 1, _ENTRY.size):
                base, last, position, length, crc = _ENTRY.unpack_from(index, at)
                prev = self._lasts[-1] if self._lasts else -1
                if (
                    crc32c.crc32c(index[at : at + _ENTRY.size - 4]) != crc
                    or not prev < base <= last < self._valid_below
                    or position != end
                    or length < layout.HEADER_SIZE
                    or position + length > size
                ):
                    break  # torn, damaged, or offsets the log no longer holds
                self._add(base, last, position, length, len(self._files))
                kept, end = at + _ENTRY.size, position + length
            if kept < len(index):
                os.truncate(_index_of(path), kept)
            if end < size:
                os.truncate(path, end)
        except OSError as exc:
            log.warning("%s: raw batches not read (%s); their records are re-encoded", path, exc)
            del self._bases[first:], self._lasts[first:], self._positions[first:]
            del self._lengths[first:], self._file_of[first:]
            return 0
        if end:
            self._files.append(path)
            self._first_entry.append(first)
        return end

    def _add(self, base: int, last: int, position: int, length: int, file: int) -> None:
        self._bases.append(base)
        self._lasts.append(last)
        self._positions.append(position)
        self._lengths.append(length)
        self._file_of.append(file)

    # writing -----------------------------------------------------------------------------
    def keep(self, base: int, batch: bytes | memoryview) -> None:
        """Store one producer batch whose records the log holds from ``base`` on (dense).
        Never raises for I/O: a batch not stored is re-encoded from rows when fetched."""
        try:
            head = layout.rebased_head(batch, base, partition_leader_epoch=LEADER_EPOCH)
        except CorruptRecordError:
            return
        (last_delta,) = layout.INT32.unpack_from(batch, layout.LAST_DELTA_OFFSET)
        last, size = base + last_delta, len(batch)
        with self._lock:
            self._load()
            if self._closed or (self._lasts and base <= self._lasts[-1]):
                return  # offsets are never stored twice
            if not self._files or self._tail_size >= self._roll_bytes:
                self._files.append(_batches_path(self._dir, base))
                self._first_entry.append(len(self._bases))
                self._tail_size = 0
                self._tail_fds = None
            path, at = self._files[-1], self._tail_size
            try:  # the batch first, then its entry: an entry never points past what was written
                if self._tail_fds is None:
                    self._tail_fds = self._fd(path, create=True), self._fd(_index_of(path), create=True)
                batches_fd, index_fd = self._tail_fds
                _write_all(batches_fd, head, memoryview(batch)[layout.REBASED_HEAD_SIZE :])
                _write_all(index_fd, _entry(base, last, at, size))
            except OSError as exc:
                log.warning("%s: raw batch at offset %d not stored (%s)", path, base, exc)
                self._undo_write(path, at)
                return
            self._add(base, last, at, size, len(self._files) - 1)
            self._tail_size = at + size

    def _undo_write(self, path: Path, size: int) -> None:
        """Cut both files back to the entries before the one that failed."""
        entries = len(self._bases) - self._first_entry[-1]
        try:
            if entries:
                os.truncate(path, size)
                os.truncate(_index_of(path), entries * _ENTRY.size)
            else:
                self._drop_files(path)
        except OSError:
            pass  # an entry cut short is ignored when the files are next scanned
        if not entries:
            self._files.pop()
            self._first_entry.pop()
            self._tail_size = os.path.getsize(self._files[-1]) if self._files else 0

    def _drop_files(self, path: Path) -> None:
        for name in (path, _index_of(path)):
            self._close_fd(name)
            name.unlink(missing_ok=True)

    def drop_below(self, log_start: int) -> None:
        """Remove the files whose every entry lies below ``log_start``."""
        with self._lock:
            if not self._loaded:  # by name, not read: a file ends where the next one begins
                for path, following in itertools.pairwise(self._names()):
                    if int(following.name[len(_PREFIX) :][:20]) <= log_start:
                        self._drop_files(path)
                return
            while self._files:
                stop = self._next_first(0)
                if self._lasts[stop - 1] >= log_start:
                    break
                self._drop_files(self._files.pop(0))
                self._first_entry.pop(0)
                for column in (self._bases, self._lasts, self._positions, self._lengths):
                    del column[:stop]
                del self._file_of[:stop]
                self._file_of = array("q", (i - 1 for i in self._file_of))
                self._first_entry = [i - stop for i in self._first_entry]
            if not self._files:
                self._tail_size = 0

    def _next_first(self, file: int) -> int:
        """The first entry index after ``file``'s entries."""
        return self._first_entry[file + 1] if file + 1 < len(self._files) else len(self._bases)

    # reading -----------------------------------------------------------------------------
    def at_or_after(self, offset: int) -> StoredBatch | None:
        """The first stored batch whose last offset is ``offset`` or later (it holds
        ``offset`` when its base is at or before it), or None."""
        with self._lock:
            self._load()
            i = bisect.bisect_left(self._lasts, offset)
            if i == len(self._lasts):
                return None
            return StoredBatch(self._bases[i], self._lasts[i], self._lasts[i] - self._bases[i] + 1,
                               self._files[self._file_of[i]], self._positions[i], self._lengths[i])  # fmt: skip

    def read(self, entry: StoredBatch) -> memoryview | None:
        """The batch's bytes if every byte checks out (header fields, CRC-32C), else None:
        a damaged entry is never served."""
        run = self.read_run(entry, end=entry.last + 1, max_bytes=0)
        return run.data if run else None

    def read_run(self, first: StoredBatch, *, end: int, max_bytes: int) -> BatchRun:
        """``first`` and the batches after it whose offsets follow on (in the same file),
        below ``end`` and together at most ``max_bytes`` (``first`` whatever its size), with
        their bytes; it stops before a batch that fails its checks (empty if ``first``
        does): a damaged entry is never served. A large run is a view of the file's memory
        map, not a copy: the bytes go from the page cache straight to the socket."""
        with self._lock:
            i = bisect.bisect_left(self._bases, first.base)
            if self._closed or i == len(self._bases) or self._bases[i] != first.base or not self._lengths[i]:
                return _NOTHING  # dropped meanwhile, or found damaged before
            j, total = i, self._lengths[i]
            while (
                j + 1 < len(self._bases)
                and self._file_of[j + 1] == self._file_of[i]
                and self._bases[j + 1] == self._lasts[j] + 1
                and self._lasts[j + 1] < end
                and 0 < self._lengths[j + 1] <= max_bytes - total
            ):
                j += 1
                total += self._lengths[j]
            path, start = self._files[self._file_of[i]], self._positions[i]
            entries = [StoredBatch(self._bases[k], self._lasts[k], self._lasts[k] - self._bases[k] + 1, path,
                                   self._positions[k], self._lengths[k]) for k in range(i, j + 1)]  # fmt: skip
            try:
                data = _read_range(self._fd(path), start, total)
            except (OSError, ValueError):  # ValueError: a mapping past the end of a file cut meanwhile
                return _NOTHING
        at = 0
        for k, entry in enumerate(entries):
            if not _sound(data[at : at + entry.length], entry):
                log.warning("%s: the raw batch at offset %d fails its checks; its records are re-encoded",
                            entry.path, entry.base)  # fmt: skip
                self._forget(entry)
                return BatchRun(entries[:k], data[:at])
            at += entry.length
        return BatchRun(entries, data)

    def _fd(self, path: Path, *, create: bool = False) -> int:
        fd = self._fds.get(path)
        if fd is None:
            flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
            fd = self._fds[path] = os.open(path, flags, 0o644)
        return fd

    def _close_fd(self, path: Path) -> None:
        self._tail_fds = None
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Close the files (the log is closing); nothing is kept or read after this."""
        with self._lock:
            self._closed = True
            for path in list(self._fds):
                self._close_fd(path)

    def _forget(self, entry: StoredBatch) -> None:
        """Never look at a damaged entry again (its bytes stay until the file is dropped)."""
        with self._lock:
            i = bisect.bisect_left(self._bases, entry.base)
            if i < len(self._bases) and self._bases[i] == entry.base:
                self._lengths[i] = 0  # fails _sound from now on, without a read


def _read_range(fd: int, start: int, length: int) -> memoryview:
    """``length`` bytes of the file from ``start``: a view of its memory map when large
    (unmapped once the last view of it is gone), a copy when small."""
    if length < _MAP_AT_LEAST:
        return memoryview(os.pread(fd, length, start))
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    mapped = mmap.mmap(fd, start + length - aligned, offset=aligned, access=mmap.ACCESS_READ)
    return memoryview(mapped)[start - aligned :]


def _write_all(fd: int, *parts: bytes | memoryview) -> None:
    written, size = os.writev(fd, parts), sum(len(part) for part in parts)
    if written != size:
        raise OSError(f"short write ({written} of {size} bytes)")


def _sound(data: memoryview, entry: StoredBatch) -> bool:
    if len(data) != entry.length or entry.length < layout.HEADER_SIZE:
        return False
    base, length = layout.OFFSET_LENGTH.unpack_from(data, 0)
    (epoch,) = layout.INT32.unpack_from(data, layout.LOG_OVERHEAD)
    (crc,) = struct.unpack_from(">I", data, layout.CRC_OFFSET)
    (last_delta,) = layout.INT32.unpack_from(data, layout.LAST_DELTA_OFFSET)
    (count,) = layout.INT32.unpack_from(data, _COUNT_OFFSET)
    return (
        base == entry.base
        and length + layout.LOG_OVERHEAD == entry.length
        and epoch == LEADER_EPOCH
        and data[layout.MAGIC_OFFSET] == 2
        and base + last_delta == entry.last
        and count == entry.count
        and crc32c.crc32c(memoryview(data)[layout.ATTRIBUTES_OFFSET :]) == crc
    )
