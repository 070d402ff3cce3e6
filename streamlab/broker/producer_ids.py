"""Producer ids, never handed out twice on a data directory (:class:`ProducerIds`).

Ids are reserved in blocks of :data:`ID_BLOCK`: the end of the reserved block is written
durably to ``<data>/server/producer-ids`` before an id from it is used, so a crash can
only skip ids. The transaction coordinator of a directory opened without ``streamlab
serve`` takes its ids here; the server's producer state (:mod:`streamlab.broker.producer_state`)
takes them from the same file, so whichever comes later continues past the other.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

from streamlab.storage.state_lines import replace_durably

ID_BLOCK: Final = 1000
IDS_FILE: Final = "producer-ids"


class ProducerIds:
    """Producer ids reserved in ``directory``'s ``producer-ids`` file; thread-safe."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / IDS_FILE
        self._lock = threading.Lock()
        self._next = self._block_end = self._reserved()

    def _reserved(self) -> int:
        """The end of the last block reserved (0 for a directory that never had one)."""
        try:
            return int(self._path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def new(self) -> tuple[int, int]:
        """A producer id never handed out before, with epoch 0."""
        with self._lock:
            if self._next >= self._block_end:
                # Reserve durably before use (a crash can only skip ids); past whatever the
                # file says now, in case a server in this process reserved meanwhile.
                self._next = max(self._next, self._reserved())
                self._block_end = self._next + ID_BLOCK
                replace_durably(self._path, str(self._block_end).encode())
            pid = self._next
            self._next += 1
            return pid, 0
