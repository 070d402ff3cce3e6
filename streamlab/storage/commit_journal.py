"""A write-ahead journal for committed offsets, checkpointed into the DuckDB catalog.

Consumers may commit after every batch. A DuckDB transaction costs tens of milliseconds
(it is an analytical engine), so each commit is instead appended as one checksummed line
to this journal and kept in memory; the catalog's ``committed_offsets`` table receives
the state in bulk at checkpoints (journal over 1 MiB, and on close), after which the
journal starts again. On open, catalog state plus the journal's whole lines is the truth.

Lines are written with ``os.write`` (they survive a killed process) and not fsynced each:
a power cut can lose the last moments of commits, which re-delivers records (still at
least once) but never skips one. ``sync()`` makes them durable on demand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import crc32c

from streamlab.storage.append_file import AppendFile
from streamlab.storage.state_lines import encode_line

CHECKPOINT_BYTES = 1 << 20

Offsets = dict[str, dict[tuple[str, int], tuple[int, str, int]]]  # group -> (topic, p) -> (offset, metadata, ms)
Epochs = dict[str, dict[tuple[str, int], int]]  # group -> (topic, p) -> committed leader epoch
EPOCHS_CHECKPOINT = "offset_epochs.json"  # the leader epochs of the checkpointed offsets


def apply_epochs(
    into: Epochs, group: str, committed: list[tuple[str, int]], epochs: dict[tuple[str, int], int]
) -> None:
    """A commit of ``committed`` partitions: those in ``epochs`` take its epoch, the others lose theirs."""
    state = into.setdefault(group, {})
    for key in committed:
        if key in epochs:
            state[key] = epochs[key]
        else:
            state.pop(key, None)


def read_epochs(path: Path) -> Epochs:
    """The leader epochs written at the last checkpoint ({} if none, or unreadable: epochs
    only help clients detect truncation, so losing them is never worse than not having them)."""
    out: Epochs = {}
    try:
        rows = json.loads(path.read_bytes()) if path.exists() else []
        for group, topic, partition, epoch in rows:
            out.setdefault(str(group), {})[(str(topic), int(partition))] = int(epoch)
    except (OSError, ValueError, TypeError):
        return {}
    return out


def replay(path: Path, into: Offsets, epochs: Epochs | None = None) -> None:
    """Apply every whole, checksum-valid line of the journal at ``path`` to ``into``."""
    if not path.exists():
        return
    for raw in path.read_bytes().split(b"\n"):
        crc, _, payload = raw.partition(b" ")
        if len(crc) != 8 or not payload or f"{crc32c.crc32c(payload):08x}".encode() != crc:
            continue  # torn by a crash: that commit was never acknowledged (skipped, not the end)
        entry = json.loads(payload)
        if entry.get("delete_topic") is not None:
            for offsets in into.values():
                for key in [k for k in offsets if k[0] == entry["delete_topic"]]:
                    del offsets[key]
            continue
        if entry.get("delete_offsets") is not None:  # DeleteGroups, OffsetDelete
            group_state = into.get(entry["delete_offsets"], {})
            wanted = entry.get("p")
            for key in list(group_state) if wanted is None else [(t, p) for t, p in wanted]:
                group_state.pop(key, None)
            continue
        group = into.setdefault(entry["g"], {})
        for topic, partition, offset, metadata in entry["o"]:
            group[(topic, partition)] = (offset, metadata, entry["t"])
        if epochs is not None:
            given = {(t, p): e for t, p, e in entry.get("e", ())}
            apply_epochs(epochs, entry["g"], [(t, p) for t, p, _, _ in entry["o"]], given)


class CommitJournal:
    """Appends commit lines to ``path`` (``None``: keeps nothing, for in-memory catalogs).

    A line that cannot be written whole (disk full) is cut back before the error is raised
    (see :class:`AppendFile`), so it can never glue itself to the next commit's line."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file = None if path is None else AppendFile(path, flags=os.O_WRONLY)
        self.size = 0 if self._file is None else self._file.size

    def append(self, entry: dict[str, object]) -> None:
        line = encode_line(entry)
        if self._file is not None:
            self._file.append(line)
        self.size += len(line)

    def sync(self) -> None:
        if self._file is not None:
            self._file.sync()

    def reset(self) -> None:
        """Empty the journal once its content is safe in the catalog."""
        if self._file is not None:
            self._file.truncate()
        self.size = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
