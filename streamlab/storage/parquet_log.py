"""The default engine: an active segment file per partition, sealed into Parquet. A
partition log composes its :class:`ActiveSegment` (``active.py``) and its
:class:`SealedSegments` (``sealed.py``), and owns what spans both: offsets, the lock,
damage, sealing, and applying retention and compaction (decided in ``cleanup.py``).

Layout under the data directory::

    topics/<topic>/<partition>/<base offset, 20 digits>.log       active segment (active.py)
    topics/<topic>/<partition>/<base offset, 20 digits>.parquet   sealed segments (sealed.py)
    topics/<topic>/<partition>/<base offset>.<n>.parquet           a compacted segment

The catalog's segment index is the single truth of which files hold the log; every change
to it is one DuckDB transaction (the commit point), and files are only ever written under
a new name before it and removed after it:

* **sealing** writes the Parquet file (temporary name, fsync, rename), indexes it, then
  removes the active file;
* **compaction** writes its output under a name no file had, then swaps old for new in
  the index in one transaction, then removes the old files;
* **retention** removes segments from the index (advancing the log start), then the files.

Recovery on open finishes or undoes whatever a crash interrupted: a file the index does
not name is a sealed segment the crash kept from being indexed only if it lies wholly
past the indexed ones (then it is indexed); otherwise it is the leftover of a compaction
or retention and is removed. So no offset is ever held twice and no deleted segment
comes back. An indexed file that is missing or fails its checksum is *damage*: reads that
reach it raise :class:`CorruptSegmentError` naming the file and offsets, everything before
it stays readable, and ``streamlab check`` reports it.

Readers (replay, SQL, fetch) take a :class:`LogSnapshot`, which pins the files it names:
a file dropped by retention or compaction meanwhile is removed only when the last
snapshot holding it is released.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamlab.errors import ClosedError, OffsetOutOfRangeError, RecoveryWarning, StorageError
from streamlab.model.schema import BASE_COLUMNS, RECORD_SCHEMA, with_base_offset
from streamlab.model.views import FIELDS_COLUMN
from streamlab.storage.active import ActiveSegment
from streamlab.storage.base import Damage, LogSnapshot, PartitionLog
from streamlab.storage.catalog import Catalog, SegmentInfo
from streamlab.storage.cleanup import compacted, expired_segments
from streamlab.storage.faults import crash_point
from streamlab.storage.manifest import TOPIC_MANIFEST
from streamlab.storage.sealed import SealedSegments, segment_name
from streamlab.storage.wire_batches import WireBatchStore

log = logging.getLogger("streamlab.storage")


class ParquetPartitionLog:
    def __init__(self, root: Path, catalog: Catalog, topic: str, partition: int, segment_bytes: int) -> None:
        self.topic, self.partition = topic, partition
        self.dir = root / "topics" / topic / str(partition)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._catalog = catalog
        self._lock = threading.RLock()
        self.segment_bytes = segment_bytes
        self._closed = False
        self._log_start = catalog.log_start_offset(topic, partition)
        self._sealed = SealedSegments(
            self.dir, catalog, topic, partition, lock=self._lock, record_damage=self._record_damage
        )
        indexed_end, self.damage = self._sealed.reconcile(self._log_start, self._report)
        self._active = ActiveSegment(self.dir)
        # Past a missing last segment too: its offsets are never reused.
        self._next, active_damage = self._active.recover(indexed_end, self._report)
        self.damage.extend(active_damage)
        self._next = max(self._next, self._log_start)
        self.wire_batches = WireBatchStore(self.dir, valid_below=self._next)  # producers' batches, for Fetch

    def _report(self, message: str) -> None:
        # A warning, not a log line: a notebook shows it under the cell, and `streamlab
        # serve` routes warnings into its log (logging.captureWarnings).
        warnings.warn(RecoveryWarning(f"{self.topic}/{self.partition}: {message}"), stacklevel=2)

    def _record_damage(self, damage: Damage) -> None:
        with self._lock:
            if damage not in self.damage:
                self.damage.append(damage)
                log.error("%s/%d: %s: %s", self.topic, self.partition, damage.path, damage.reason)

    # PartitionLog -----------------------------------------------------------------------
    @property
    def log_start_offset(self) -> int:
        return self._log_start

    @property
    def high_watermark(self) -> int:
        return self._next

    @property
    def active_start(self) -> int:
        with self._lock:
            base = self._active.base_offset
            return self._next if base is None else max(base, self._log_start)

    @property
    def append_lock(self) -> threading.RLock:
        """The lock every append holds: hold it to read the high watermark and append with
        no other append between (a transactional batch notes its offsets before it is stored)."""
        return self._lock

    def append(self, batch: pa.RecordBatch, *, sync: bool, now_ms: int | None = None) -> int:
        """Store ``batch`` at the end of the log. On a write failure (disk full) nothing of it
        is kept and :class:`StorageError` is raised; a failure to seal the segment *after*
        the append does not undo it (the records are durable in the active file) and the
        seal is tried again on the next append. A ``value_fields`` column beside the record
        columns (send_many's typed values) is kept in memory for sealing, never written to
        the active file. ``now_ms`` (the broker's clock) starts the segment's age when it is
        the first record of the active segment (see :meth:`roll_if_older`)."""
        with self._lock:
            if self._closed:
                raise ClosedError(f"{self.topic}/{self.partition}: the partition log is closed")
            fields = None
            if FIELDS_COLUMN in batch.schema.names:
                fields = batch.column(FIELDS_COLUMN)
                batch = batch.select(BASE_COLUMNS)
            base = self._next
            batch = with_base_offset(batch, base)
            self._active.append(batch, base=base, fields=fields, now_ms=now_ms)
            self._next = base + batch.num_rows
            if self._active.size >= self.segment_bytes:
                try:
                    self.roll()
                except StorageError as exc:
                    log.warning("%s/%d: sealing the active segment failed, will retry: %s",
                                self.topic, self.partition, exc)  # fmt: skip
            active = self._active.file
        if sync and active is not None:
            active.sync()  # outside the lock: appends go on, concurrent syncs are shared
        return base

    def sync(self) -> None:
        """Make every record appended so far durable (a shared fsync round, see append_file.py)."""
        with self._lock:
            active = self._active.file
        if active is not None:
            active.sync()  # a file rolled meanwhile was sealed into a durable segment

    def read(self, offset: int, max_records: int) -> pa.Table:
        """Up to ``max_records`` records from ``offset``. Reading stops before damaged
        offsets; a read that starts in them raises :class:`CorruptSegmentError`."""
        with self._lock:
            offset = max(offset, self._log_start)
            stop = self._damage_stop(offset)
            pieces: list[pa.Table | pa.RecordBatch] = list(self._sealed.read(offset, stop, max_records))
            # Damage the sealed read just found bounds the rest: the active records after a
            # damaged segment must not be served, or a consumer would step over the gap.
            stop = min(stop, self._damage_stop(offset))
            wanted = max_records - sum(p.num_rows for p in pieces)
            pieces.extend(self._active.read(offset, stop, wanted))
        if not pieces:
            return RECORD_SCHEMA.empty_table()
        table = pa.Table.from_batches(
            [b for p in pieces for b in (p.to_batches() if isinstance(p, pa.Table) else [p])],
            schema=RECORD_SCHEMA,
        )
        if stop < self._next:
            table = table.filter(pc.less(table.column("offset"), stop))
        return table

    def _damage_stop(self, offset: int) -> int:
        """The first damaged offset at or after ``offset`` (the high watermark if none);
        raises if ``offset`` itself is damaged."""
        stop = self._next
        for damage in self.damage:
            if damage.start <= offset < damage.end:
                raise damage.error(self.topic, self.partition)
            if damage.start > offset:
                stop = min(stop, damage.start)
        return stop

    def verify_once(self, seg: SegmentInfo) -> None:
        """Check a sealed segment's checksum unless this process already did (the file is
        immutable); damage is recorded."""
        self._sealed.verify_once(seg)

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        target = pa.scalar(timestamp_ms, pa.int64())
        with self._lock:
            tables: list[pa.Table | pa.RecordBatch] = [
                self._sealed.load(s) for s in self._sealed.segments if s.max_timestamp >= timestamp_ms
            ]
            tables.extend(self._active.batches)
        for table in tables:
            hits = pc.greater_equal(table.column("timestamp").cast(pa.int64()), target)
            index = pc.index(hits, True).as_py()
            if index >= 0:
                return int(table.column("offset")[index].as_py())
        return None

    def sealed_segments(self) -> list[SegmentInfo]:
        with self._lock:
            return list(self._sealed.segments)

    def segment_path(self, seg: SegmentInfo) -> Path:
        return self.dir / seg.path

    def active_table(self) -> pa.Table:
        with self._lock:
            return self._active.table()

    def snapshot(self) -> LogSnapshot:
        """Sealed segments and active records of one instant, the files pinned until
        :meth:`LogSnapshot.release` (call it, or use it in a ``try/finally``)."""
        with self._lock:
            segments = self._sealed.pin()
            snap = LogSnapshot(
                segments, [self.dir / s.path for s in segments], self._active.table(),
                list(self.damage), self._log_start, self._active.typed_fields(),
            )  # fmt: skip
        snap._release = lambda: self._sealed.unpin([s.path for s in segments])
        return snap

    def size_bytes(self) -> int:
        with self._lock:
            return self._active.size + self._sealed.size_bytes

    # sealing, retention, compaction -----------------------------------------------------
    def roll(self) -> None:
        with self._lock:
            if not self._active.batches:
                return
            self._sealed.seal(self._active.table(), self._active.typed_fields())
            crash_point("seal.before-unlink-active")
            self._active.forget_sealed()  # the fsynced segment has it all

    def roll_if_older(self, segment_ms: int, now_ms: int) -> bool:
        """Seal the active segment when its first record was appended ``segment_ms`` or
        more before ``now_ms`` (both on the broker's clock): ``segment.ms``, measured from
        the append rather than, as Kafka does, from the first record's timestamp, which
        for historical data would seal at every append. Whether it sealed."""
        with self._lock:
            if self._closed or not self._active.batches:
                return False
            if self._active.since_ms is None:  # recovered at open: its age starts now
                self._active.since_ms = now_ms
            if now_ms - self._active.since_ms < segment_ms:
                return False
            self.roll()
            return True

    def apply_retention(self, config: dict[str, Any], now_ms: int) -> int:
        if "delete" not in config["cleanup.policy"]:
            return 0
        retention_ms = config["retention.ms"]
        with self._lock:
            if retention_ms >= 0 and self._active.batches:
                newest = pc.max(self._active.table().column("timestamp").cast(pa.int64())).as_py()
                if newest < now_ms - retention_ms:
                    self.roll()  # everything active has expired: seal so it can be deleted
            doomed = expired_segments(self._sealed.segments, self.size_bytes(), config, now_ms)
            if doomed:
                self._swap_segments(doomed, [], doomed[-1].last_offset + 1, point="retention.after-commit")
            return len(doomed)

    def delete_records(self, offset: int) -> int:
        """Move the log start forward to ``offset`` (Kafka's DeleteRecords): reads never
        return a record below it again. Segments wholly below it are deleted as retention
        deletes them; the new log start is committed to the catalog first, so it survives a
        crash. ``offset`` must be from the log start to the high watermark (a smaller one
        changes nothing). A log start inside the active segment seals it first. Returns the
        log start."""
        with self._lock:
            if self._closed:
                raise ClosedError(f"{self.topic}/{self.partition}: the partition log is closed")
            if not 0 <= offset <= self._next:
                raise OffsetOutOfRangeError(
                    f"{self.topic}/{self.partition}: cannot delete records before offset {offset}: "
                    f"the log ends at {self._next}",
                    topic=self.topic, partition=self.partition,
                )  # fmt: skip
            if offset <= self._log_start:
                return self._log_start
            active_base = self._active.base_offset
            if active_base is not None and offset > active_base:
                # Recovery takes what the active file holds below the log start as sealed
                # already: seal it now, so the log start always falls in a sealed segment.
                self.roll()
            doomed = [s for s in self._sealed.segments if s.last_offset < offset]
            if doomed:
                self._swap_segments(doomed, [], offset, point="delete-records.after-commit")
            else:
                self._catalog.set_log_start_offset(self.topic, self.partition, offset)
                self._log_start = offset
                self.damage = [d for d in self.damage if d.end > self._log_start]
            return self._log_start

    def _swap_segments(self, old: list[SegmentInfo], new: list[SegmentInfo], log_start: int, *, point: str) -> None:
        """Replace ``old`` by ``new`` in the index (the commit point), then drop the files."""
        self._sealed.replace(old, new, log_start, point=point)
        self._log_start = max(self._log_start, log_start)
        self.damage = [d for d in self.damage if d.end > self._log_start]

    def compact(
        self, config: dict[str, Any], now_ms: int, *, aborted: Sequence[tuple[int, int]] = (),
        stable_offset: int | None = None,
    ) -> int:  # fmt: skip
        """Keep the latest record per key in sealed segments, as Kafka's cleaner does with
        transactions: records of ``aborted`` transactions (sorted ``[start, end)`` offset
        ranges) are removed and never count as a key's latest, nothing from
        ``stable_offset`` (the last stable offset: an open transaction may still abort) on
        is cleaned or counts, and transaction markers are kept (they are not keyed records)."""
        if "compact" not in config["cleanup.policy"]:
            return 0
        with self._lock:
            old = list(self._sealed.segments)
            if not old:
                return 0
            if self.damage:
                log.warning("%s/%d: not compacted while it has damaged offsets (see `streamlab check`)",
                            self.topic, self.partition)  # fmt: skip
                return 0
            sealed = pa.concat_tables([self._sealed.load(s) for s in old])
            kept = compacted(sealed, self._active.table(), config, now_ms, aborted=aborted, stable_offset=stable_offset)
            removed = sealed.num_rows - kept.num_rows
            if removed == 0:
                return 0
            # The output gets a name no file has had, so until the index swap commits the
            # old segments are untouched and a crash leaves the log as it was.
            new = []
            if kept.num_rows:
                seg = self._sealed.write(kept, segment_name(old[0].base_offset, f".{time.time_ns():x}"))
                new = [dataclasses.replace(seg, last_offset=old[-1].last_offset)]
            crash_point("compact.before-commit")
            # With nothing left, the log starts past the old segments, so their offsets are
            # never handed out again and no leftover file of theirs can be taken back.
            log_start = self._log_start if new else old[-1].last_offset + 1
            self._swap_segments(old, new, log_start, point="compact.after-commit")
            return removed

    # checking and repair ------------------------------------------------------------------
    def check(self) -> list[Damage]:
        """Verify every sealed segment (checksum, then a full Parquet decode with page
        checksums) and return all damage known, including what recovery found."""
        self._sealed.check()
        with self._lock:
            return list(self.damage)

    def repair(self, quarantine: Path) -> list[str]:
        """Take every damaged part out of the log, keeping the files under ``quarantine``:
        a damaged or missing segment leaves the index, and an active segment with damaged
        bytes is rewritten with its valid frames only. The offsets they held stay unused
        (a gap, as compaction leaves), so no offset is ever handed out twice. Returns what
        was done, one line each."""
        done: list[str] = []
        with self._lock:
            indexed = self._sealed.indexed()
            aside = quarantine / self.topic / str(self.partition)
            left: list[Damage] = []
            for damage in self.damage:
                where = f"{self.topic}/{self.partition} offsets {damage.start}..{damage.end - 1}"
                if damage.path in indexed:
                    seg = indexed.pop(damage.path)
                    done.append(f"{where}: {self._sealed.quarantine(seg, damage.reason, aside, self._log_start)}")
                elif self._active.holds(damage.path):
                    done.append(f"{where}: {self._active.cut_damage(aside)}")
                else:
                    left.append(damage)
                    done.append(f"{where}: {damage.path} is damaged and was left as it is")
            self.damage = left
        return done

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._active.close()
            self._sealed.close()
            self.wire_batches.close()

    def discard(self) -> None:
        """Remove the files of this closed log (its topic was deleted). Segments a reader's
        snapshot still holds stay until that reader is done: a replay or query that began
        before the deletion reads what it began with."""
        with self._lock:
            self._sealed.discard()

    @property
    def pinned(self) -> bool:
        """Whether a reader's snapshot still holds files of this log."""
        return self._sealed.pinned


class ParquetLogEngine:
    def __init__(self, root: Path, catalog: Catalog) -> None:
        self.root, self.catalog = root, catalog

    def open_log(self, topic: str, partition: int, *, segment_bytes: int) -> ParquetPartitionLog:
        return ParquetPartitionLog(self.root, self.catalog, topic, partition, segment_bytes)

    def delete_topic_files(self, topic: str, logs: Sequence[PartitionLog]) -> None:
        """Remove a deleted topic's files; ``logs`` (closed) keep what readers still hold."""
        folder = self.root / "topics" / topic
        (folder / TOPIC_MANIFEST).unlink(missing_ok=True)  # first: never rebuilt from what is left
        for log in logs:
            log.discard()
        if not any(log.pinned for log in logs):
            shutil.rmtree(folder, ignore_errors=True)

    def remove_orphans(self, topics: set[str]) -> list[str]:
        """Remove topic folders the catalog does not know: what a deletion interrupted by a
        crash (or by readers that never finished) left. Returns their names."""
        removed = []
        folder = self.root / "topics"
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.is_dir() and path.name not in topics:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed
