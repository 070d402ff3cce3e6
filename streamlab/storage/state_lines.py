"""The line format of every small state file: ``<crc32c hex> <json>\\n`` per change.

The commit journal, the idempotent producers' state and the transaction log append one
such line per change. A crash can only tear the last line; its checksum tells, so a
reader stops there (nothing after a torn line was ever acknowledged).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crc32c import crc32c


def encode_line(doc: dict[str, Any]) -> bytes:
    payload = json.dumps(doc, separators=(",", ":")).encode()
    return b"%08x %s\n" % (crc32c(payload), payload)


def parse_lines(data: bytes) -> Iterator[dict[str, Any]]:
    """Every whole, checksum-valid line; stops at a torn or corrupt tail."""
    for raw in data.split(b"\n")[:-1]:  # the last piece is empty or a torn line
        crc, _, payload = raw.partition(b" ")
        try:
            if len(crc) != 8 or int(crc, 16) != crc32c(payload):
                return
            yield json.loads(payload)
        except ValueError:
            return


def fsync_dir(path: Path) -> None:
    """Make a file created or renamed in ``path`` durable (its directory entry)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, data: bytes) -> None:
    """Make ``data`` the whole of ``path``, all or nothing across a crash: written under a
    ``.tmp`` name and fsynced, renamed over it, and the rename made durable."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
