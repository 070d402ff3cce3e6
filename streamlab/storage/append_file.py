"""An append-only file whose appends become durable in shared ``fdatasync`` rounds (group
commit): the active segments of partition logs, the commit journal, idempotent producers'
state and the transaction log are written through it."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from streamlab.errors import StorageError

if TYPE_CHECKING:
    import pyarrow as pa


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

    def append(self, *parts: bytes | memoryview | pa.Buffer) -> None:
        """Append ``parts`` one after another, whole, or leave the file as it was and raise
        :class:`StorageError`.

        A write cut short (disk full, I/O error) is truncated back to the last whole append
        before the error is raised, so later appends never land behind a torn frame (which
        recovery would cut, and everything after it). If even the truncation fails the file
        goes offline: every later append and sync is refused until it is reopened.
        """
        size = sum(memoryview(part).nbytes for part in parts)
        with self._cv:
            if self._offline is not None:
                raise StorageError(f"{self.path} is offline after a failed write ({self._offline}); reopen to recover")
            try:
                written = os.writev(self._fd, parts)
                if written < size:  # os.writev may write less on signals / huge frames
                    rest = memoryview(b"".join(parts))
                    while written < size:
                        written += os.write(self._fd, rest[written:])
            except OSError as exc:
                self._undo_partial_write(exc)
                raise StorageError(f"could not write to {self.path}: {exc.strerror or exc}") from exc
            self.size += size
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
