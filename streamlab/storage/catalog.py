"""The DuckDB catalog: topics and their configs, partitions' log start, the segment index
and committed offsets. Durable metadata lives here; record data lives in segment files.

One DuckDB connection per broker; DuckDB connections are not safe to share between
threads, so every statement goes through one lock (catalog writes are rare and small).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from streamlab.errors import ClosedError, StorageError
from streamlab.storage import manifest
from streamlab.storage.commit_journal import (
    CHECKPOINT_BYTES,
    EPOCHS_CHECKPOINT,
    CommitJournal,
    Epochs,
    Offsets,
    apply_epochs,
    read_epochs,
    replay,
)
from streamlab.storage.manifest import OFFSETS_CHECKPOINT

_DDL = """
CREATE TABLE IF NOT EXISTS topics (
    name VARCHAR PRIMARY KEY, partitions INTEGER NOT NULL, config JSON NOT NULL, created_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    topic VARCHAR, partition INTEGER, log_start_offset BIGINT NOT NULL, PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS segments (
    topic VARCHAR, partition INTEGER, base_offset BIGINT, last_offset BIGINT, records BIGINT,
    min_timestamp BIGINT, max_timestamp BIGINT, bytes BIGINT, path VARCHAR,
    PRIMARY KEY (topic, partition, base_offset));
ALTER TABLE segments ADD COLUMN IF NOT EXISTS checksum BIGINT;
CREATE TABLE IF NOT EXISTS committed_offsets (
    group_id VARCHAR, topic VARCHAR, partition INTEGER, "offset" BIGINT NOT NULL, metadata VARCHAR,
    commit_ms BIGINT NOT NULL, PRIMARY KEY (group_id, topic, partition));
CREATE TABLE IF NOT EXISTS group_events (
    group_id VARCHAR, generation INTEGER, time_ms BIGINT, reason VARCHAR, member_id VARCHAR,
    topic VARCHAR, partition INTEGER, change VARCHAR);
"""


@contextmanager
def _storage_errors(path: Path) -> Iterator[None]:
    """DuckDB's write failures (disk full, I/O) as :class:`StorageError` (DuckDB rolls the
    transaction back and stays usable once space is freed); use after close as :class:`ClosedError`."""
    try:
        yield
    except duckdb.ConnectionException as exc:  # closed with its broker
        raise ClosedError(f"the broker for {path.parent} is closed; open it again with streamlab.connect()") from exc
    except (duckdb.IOException, duckdb.TransactionException) as exc:
        raise StorageError(f"could not write the catalog {path}: {exc}") from exc


def _read_offsets_checkpoint(path: Path) -> list[tuple[Any, ...]]:
    try:
        rows = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return []
    return [tuple(row) for row in rows if isinstance(row, list) and len(row) == 6]


def replay_deletion(offsets: Offsets, topic: str) -> None:
    for state in offsets.values():
        for key in [k for k in state if k[0] == topic]:
            del state[key]


def replay_offset_deletion(offsets: Offsets, group: str, partitions: list[tuple[str, int]] | None) -> None:
    state = offsets.get(group, {})
    for key in list(state) if partitions is None else [(t, p) for t, p in partitions]:
        state.pop(key, None)
    if not state:
        offsets.pop(group, None)


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A sealed segment as indexed in the catalog."""

    topic: str
    partition: int
    base_offset: int
    last_offset: int
    records: int
    min_timestamp: int
    max_timestamp: int
    bytes: int
    path: str
    checksum: int | None = None  # crc32c of the whole file (None: sealed before checksums)


_SEGMENT_PARAMS = ", ".join("?" * 10)


def _segment_row(seg: SegmentInfo) -> list[Any]:
    return [seg.topic, seg.partition, seg.base_offset, seg.last_offset, seg.records,
            seg.min_timestamp, seg.max_timestamp, seg.bytes, seg.path, seg.checksum]  # fmt: skip


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = duckdb.connect(str(path))
        self._lock = threading.RLock()
        with self._lock:
            self._con.execute(_DDL)
        self._offsets: Offsets = {}
        self._epochs: Epochs = {}  # group -> (topic, partition) -> committed leader epoch
        # An in-memory catalog (":memory:", for tests) keeps no files beside it.
        self._root = None if str(path) == ":memory:" else path.parent
        rows = self.query("SELECT * FROM committed_offsets")
        if not rows and self._root is not None:
            rows = _read_offsets_checkpoint(self._root / OFFSETS_CHECKPOINT)  # a rebuilt catalog
        for group, topic, partition, offset, metadata, ms in rows:
            self._offsets.setdefault(group, {})[(topic, partition)] = (offset, metadata or "", ms)
        journal_path = None if self._root is None else self._root / "committed_offsets.journal"
        if self._root is not None:
            self._epochs = read_epochs(self._root / EPOCHS_CHECKPOINT)
        if journal_path is not None:
            replay(journal_path, self._offsets, self._epochs)
        self._journal = CommitJournal(journal_path)
        self.checkpoint_offsets()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic, durable change: all of it is committed or none of it."""
        with self._lock, _storage_errors(self.path):
            self._con.execute("BEGIN TRANSACTION")
            try:
                yield self._con
                self._con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):  # a failed COMMIT has rolled back already
                    self._con.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock, _storage_errors(self.path):
            return self._con.execute(sql, params or []).fetchall()

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        with self._lock, _storage_errors(self.path):
            self._con.execute(sql, params or [])

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for a long query (replay, SQL) in any thread."""
        with self._lock:
            return self._con.cursor()

    # topics -----------------------------------------------------------------------------
    def topics(self) -> dict[str, tuple[int, dict[str, Any]]]:
        rows = self.query("SELECT name, partitions, config FROM topics ORDER BY name")
        return {name: (parts, json.loads(config)) for name, parts, config in rows}

    def add_topic(self, name: str, partitions: int, config: dict[str, Any], *, created_ms: int | None = None) -> None:
        created_ms = int(time.time() * 1000) if created_ms is None else created_ms
        with self.transaction() as con:
            con.execute("INSERT INTO topics VALUES (?, ?, ?, ?)", [name, partitions, json.dumps(config), created_ms])
            for p in range(partitions):
                con.execute("INSERT INTO partitions VALUES (?, ?, 0)", [name, p])
        self.rewrite_manifest(name)

    def add_partitions(self, name: str, old: int, new: int) -> None:
        with self.transaction() as con:
            con.execute("UPDATE topics SET partitions = ? WHERE name = ?", [new, name])
            for p in range(old, new):
                con.execute("INSERT INTO partitions VALUES (?, ?, 0)", [name, p])
        self.rewrite_manifest(name)

    def set_topic_config(self, name: str, config: dict[str, Any]) -> None:
        self.execute("UPDATE topics SET config = ? WHERE name = ?", [json.dumps(config), name])
        self.rewrite_manifest(name)

    def rewrite_manifest(self, name: str) -> None:
        """Copy the topic's row beside its data (for a rebuild of a lost catalog)."""
        if self._root is None:
            return
        rows = self.query("SELECT partitions, config, created_ms FROM topics WHERE name = ?", [name])
        if rows:
            partitions, config, created_ms = rows[0]
            try:
                manifest.write_topic(self._root, name, partitions, json.loads(config), created_ms)
            except OSError as exc:
                raise StorageError(f"could not write the manifest of topic {name!r}: {exc}") from exc

    def remove_topic(self, name: str) -> None:
        with self.transaction() as con:
            for table, column in (("topics", "name"), ("partitions", "topic"), ("segments", "topic")):
                con.execute(f"DELETE FROM {table} WHERE {column} = ?", [name])
            con.execute("DELETE FROM committed_offsets WHERE topic = ?", [name])
            self._journal.append({"delete_topic": name})
            replay_deletion(self._offsets, name)

    # partitions and segments ------------------------------------------------------------
    def log_start_offset(self, topic: str, partition: int) -> int:
        rows = self.query(
            "SELECT log_start_offset FROM partitions WHERE topic = ? AND partition = ?", [topic, partition]
        )
        return int(rows[0][0]) if rows else 0

    def set_log_start_offset(self, topic: str, partition: int, offset: int) -> None:
        self.execute(
            "UPDATE partitions SET log_start_offset = ? WHERE topic = ? AND partition = ?",
            [offset, topic, partition],
        )

    def segments(self, topic: str, partition: int) -> list[SegmentInfo]:
        rows = self.query(
            "SELECT * FROM segments WHERE topic = ? AND partition = ? ORDER BY base_offset",
            [topic, partition],
        )
        return [SegmentInfo(*row) for row in rows]

    def add_segment(self, seg: SegmentInfo) -> None:
        self.execute(f"INSERT OR REPLACE INTO segments VALUES ({_SEGMENT_PARAMS})", _segment_row(seg))

    def replace_segments(self, old: list[SegmentInfo], new: list[SegmentInfo], log_start: int) -> None:
        with self.transaction() as con:
            for seg in old:
                con.execute(
                    "DELETE FROM segments WHERE topic = ? AND partition = ? AND base_offset = ?",
                    [seg.topic, seg.partition, seg.base_offset],
                )
            for seg in new:
                con.execute(f"INSERT INTO segments VALUES ({_SEGMENT_PARAMS})", _segment_row(seg))
            if old:
                con.execute(
                    "UPDATE partitions SET log_start_offset = greatest(log_start_offset, ?) "
                    "WHERE topic = ? AND partition = ?",
                    [log_start, old[0].topic, old[0].partition],
                )

    # committed offsets (see commit_journal.py) ------------------------------------------
    def commit_offsets(
        self, group: str, offsets: list[tuple[str, int, int, str]], epochs: dict[tuple[str, int], int] | None = None
    ) -> None:
        """Commit ``offsets`` ((topic, partition, offset, metadata)) for ``group``, with the
        leader epochs given in ``epochs``; a partition committed without one loses its old one."""
        now = int(time.time() * 1000)
        with self._lock:
            entry: dict[str, object] = {"g": group, "t": now, "o": offsets}
            if epochs:
                entry["e"] = [[t, p, e] for (t, p), e in epochs.items()]
            self._journal.append(entry)
            state = self._offsets.setdefault(group, {})
            for topic, partition, offset, metadata in offsets:
                state[(topic, partition)] = (offset, metadata, now)
            apply_epochs(self._epochs, group, [(t, p) for t, p, _, _ in offsets], epochs or {})
            if self._journal.size > CHECKPOINT_BYTES:
                self.checkpoint_offsets()

    def delete_offsets(self, group: str, partitions: list[tuple[str, int]] | None = None) -> None:
        """Forget ``group``'s committed offsets for ``partitions`` (all of them if None):
        Kafka's DeleteGroups and OffsetDelete. Journaled like a commit, so it survives a crash."""
        with self._lock:
            self._journal.append({"delete_offsets": group, "p": partitions})
            replay_offset_deletion(self._offsets, group, partitions)

    def committed(self, group: str) -> dict[tuple[str, int], tuple[int, str]]:
        with self._lock:
            return {tp: (o, m) for tp, (o, m, _) in self._offsets.get(group, {}).items()}

    def committed_epochs(self, group: str) -> dict[tuple[str, int], int]:
        """The leader epochs committed with ``group``'s offsets (partitions without one are absent)."""
        with self._lock:
            return dict(self._epochs.get(group, {}))

    def committed_groups(self) -> list[str]:
        with self._lock:
            return sorted(g for g, offsets in self._offsets.items() if offsets)

    def checkpoint_offsets(self) -> None:
        """Move the journal's state into the catalog table and empty the journal."""
        with self._lock:
            if self._journal.size == 0:
                return
            rows = [[g, t, p, o, m, ms] for g, offs in self._offsets.items() for (t, p), (o, m, ms) in offs.items()]
            with self.transaction() as con:
                con.execute("DELETE FROM committed_offsets")
                if rows:
                    con.executemany("INSERT INTO committed_offsets VALUES (?, ?, ?, ?, ?, ?)", rows)
            if self._root is not None:
                # Leader epochs beside the table (no schema change), written before the
                # journal that also holds them is emptied.
                epochs = [[g, t, p, e] for g, es in self._epochs.items() for (t, p), e in es.items()
                          if (t, p) in self._offsets.get(g, {})]  # fmt: skip
                try:
                    manifest.write_atomically(self._root / OFFSETS_CHECKPOINT, rows)
                    manifest.write_atomically(self._root / EPOCHS_CHECKPOINT, epochs)
                except OSError as exc:
                    raise StorageError(f"could not write {self._root / OFFSETS_CHECKPOINT}: {exc}") from exc
            self._journal.reset()

    # group history --------------------------------------------------------------------
    def record_group_events(self, group_id: str, events: list[Any]) -> None:
        rows = [
            [group_id, e.generation, e.time_ms, e.reason, e.member_id, e.topic, e.partition, e.change] for e in events
        ]
        with self.transaction() as con:
            con.executemany("INSERT INTO group_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def topic_created_ms(self, name: str) -> int | None:
        """When topic ``name`` was created (what its stable topic ID derives from)."""
        rows = self.query("SELECT created_ms FROM topics WHERE name = ?", [name])
        return int(rows[0][0]) if rows else None

    def last_generations(self) -> dict[str, int]:
        """Each group's latest recorded generation."""
        return dict(self.query("SELECT group_id, max(generation) FROM group_events GROUP BY group_id"))

    def group_events(self, group_id: str) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT generation, time_ms, reason, member_id, topic, partition, change FROM group_events "
            "WHERE group_id = ? ORDER BY generation, member_id, topic, partition",
            [group_id],
        )

    def close(self) -> None:
        with self._lock:
            self.checkpoint_offsets()
            self._journal.close()
            self._con.close()
