"""One process owns a data directory at a time.

DuckDB itself refuses a second writer, but with an error about its own file; this lock
fails first and says how to share a directory: run ``streamlab serve`` on it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from streamlab.errors import BrokerLockedError


class DirectoryLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise BrokerLockedError(
                f"{directory} is already open by process {owner}. Only one process may open a data "
                f"directory; to share it, run `streamlab serve --data {directory}` there and connect "
                f"with streamlab.connect('kafka://127.0.0.1:9092')."
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
