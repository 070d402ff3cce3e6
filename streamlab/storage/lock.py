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
            owner, served_at, _ = _fields(os.pread(self._fd, 512, 0))
            os.close(self._fd)
            if served_at:  # the owner serves it (`streamlab serve`, or a notebook's lab.serve())
                raise BrokerLockedError(
                    f"{directory} is served by process {owner} at {served_at}; connect to it with "
                    f"streamlab.connect({served_at!r}) (the CLI: --data {served_at}), or stop the server to "
                    "open the directory here."
                ) from None
            raise BrokerLockedError(
                f"{directory} is already open by process {owner or 'another process'}. Only one process may "
                f"open a data directory; to share it, close it there and run `streamlab serve --data "
                f"{directory}` (or lab.serve() in the notebook that has it open), then connect everywhere to "
                "the address it prints: streamlab.connect('kafka://HOST:PORT'), or --data kafka://HOST:PORT "
                "in the CLI."
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def advertise(self, address: str, registry_url: str | None = None) -> None:
        """Note in the lock file where this process serves the directory, and its Schema
        Registry if it serves one: "PID ADDRESS [REGISTRY_URL]" (for others' errors, and for
        the CLI, which then goes through both)."""
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            os.pwrite(
                self._fd, " ".join([str(os.getpid()), address, *([registry_url] if registry_url else [])]).encode(), 0
            )

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def _fields(text: bytes) -> tuple[str, str, str]:
    """The lock file's owner pid, served address and Schema Registry URL ("" when absent)."""
    owner, served_at, registry, *_ = [*text.decode(errors="replace").split(), "", "", ""]
    return owner, served_at, registry


def served_address(directory: Path) -> str | None:
    """The ``kafka://`` address of the ``streamlab serve`` that holds ``directory``, if one does."""
    return served(directory)[0]


def served(directory: Path) -> tuple[str | None, str | None]:
    """The ``kafka://`` address and the Schema Registry URL of the ``streamlab serve`` (or
    ``lab.serve()``) that holds ``directory``: (None, None) when none does, a None URL when
    it serves no registry."""
    path = directory / ".lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _, served_at, registry = _fields(os.pread(fd, 512, 0))
            return served_at or None, (registry or None) if served_at else None
        fcntl.flock(fd, fcntl.LOCK_UN)  # nobody holds it
        return None, None
    finally:
        os.close(fd)
