"""The default engine: an active segment file per partition, sealed into Parquet.

Layout under the data directory::

    topics/<topic>/<partition>/<base offset, 20 digits>.log       active segment (active.py)
    topics/<topic>/<partition>/<base offset, 20 digits>.parquet   sealed segments
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

import bisect
import contextlib
import dataclasses
import logging
import os
import re
import shutil
import threading
import time
import warnings
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import crc32c
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamlab.errors import ClosedError, CorruptSegmentError, OffsetOutOfRangeError, RecoveryWarning, StorageError
from streamlab.model.fields import combine_typed_fields, expand_json_objects
from streamlab.model.schema import BASE_COLUMNS, RECORD_SCHEMA, with_base_offset
from streamlab.model.serde import FMT_CONTROL
from streamlab.model.views import FIELDS_COLUMN
from streamlab.storage.active import ActiveSegmentFile, Scan, encode_frame, scan
from streamlab.storage.base import Damage, LogSnapshot, PartitionLog
from streamlab.storage.catalog import Catalog, SegmentInfo
from streamlab.storage.faults import crash_point
from streamlab.storage.manifest import TOPIC_MANIFEST
from streamlab.storage.state_lines import fsync_dir
from streamlab.storage.wire_batches import WireBatchStore

log = logging.getLogger("streamlab.storage")

ROW_GROUP_SIZE = 64 * 1024
_SEGMENT_NAME = re.compile(r"[0-9]{20}(\.[0-9a-f]+)?\.parquet")
_CACHE_SEGMENTS = 4


def _in_ranges(offsets: pa.ChunkedArray, ranges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Which ``offsets`` fall in one of the sorted, disjoint ``[start, end)`` ``ranges``."""
    values = offsets.to_numpy()
    starts = np.fromiter((r[0] for r in ranges), dtype=np.int64, count=len(ranges))
    ends = np.fromiter((r[1] for r in ranges), dtype=np.int64, count=len(ranges))
    i = np.searchsorted(starts, values, side="right") - 1
    return np.asarray((i >= 0) & (values < ends[np.clip(i, 0, None)]))


def _name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def read_verified(path: Path, checksum: int | None) -> bytes:
    """The bytes of a sealed segment, checked against the crc32c it was indexed with."""
    data = path.read_bytes()  # FileNotFoundError: the caller reports the segment missing
    if checksum is not None and crc32c.crc32c(data) != checksum:
        raise ValueError(f"checksum mismatch (crc32c {crc32c.crc32c(data):#010x}, indexed {checksum:#010x})")
    return data


class ParquetPartitionLog:
    def __init__(self, root: Path, catalog: Catalog, topic: str, partition: int, segment_bytes: int) -> None:
        self.topic, self.partition = topic, partition
        self.dir = root / "topics" / topic / str(partition)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._catalog = catalog
        self._lock = threading.RLock()
        self.segment_bytes = segment_bytes
        self._cache: OrderedDict[str, pa.Table] = OrderedDict()
        self._verified: set[str] = set()  # sealed files whose checksum this process checked
        self._pins: Counter[str] = Counter()  # files held by reader snapshots
        self._unpinned_deletes: set[str] = set()  # files to remove when their last reader is done
        self._active_batches: list[pa.RecordBatch] = []
        self._active_bases: list[int] = []
        # Per active batch, its values' fields as the producer had them typed (send_many),
        # or None: the segment is sealed with them instead of parsing the JSON text back.
        # Memory only: after a restart the text is parsed, which gives the same types.
        self._active_fields: list[pa.StructArray | None] = []
        self._active_since_ms: int | None = None  # clock time of the first active append (segment.ms)
        self._active_file: ActiveSegmentFile | None = None
        self.damage: list[Damage] = []
        self._closed = False
        self._discarded = False  # the topic was deleted: the files go once no reader holds them
        self._log_start = catalog.log_start_offset(topic, partition)
        self._indexed_end = self._log_start
        self._segments = self._reconcile_segments()
        self._next = self._indexed_end  # past a missing last segment too: its offsets are never reused
        self._recover_active()
        self.wire_batches = WireBatchStore(self.dir, valid_below=self._next)  # producers' batches, for Fetch

    # recovery ---------------------------------------------------------------------------
    def _report(self, message: str) -> None:
        # A warning, not a log line: a notebook shows it under the cell, and `streamlab
        # serve` routes warnings into its log (logging.captureWarnings).
        warnings.warn(RecoveryWarning(f"{self.topic}/{self.partition}: {message}"), stacklevel=2)

    def _reconcile_segments(self) -> list[SegmentInfo]:
        indexed = []
        for seg in sorted(self._catalog.segments(self.topic, self.partition), key=lambda s: s.base_offset):
            if _SEGMENT_NAME.fullmatch(seg.path):
                indexed.append(seg)
            else:  # names read back are checked like names we make: never a path elsewhere
                self._report(f"dropped a catalog row naming {seg.path!r}, which is not a segment file name")
                self._catalog.replace_segments([seg], [], self._log_start)
        names = {s.path for s in indexed}
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()  # a seal or compaction that crashed before its rename
        last_indexed = indexed[-1].last_offset if indexed else self._log_start - 1
        for path in sorted(self.dir.glob("*.parquet")):
            if path.name in names:
                continue
            try:
                first = pc.min(pq.read_table(path, columns=["offset"]).column("offset")).as_py()
            except (pa.ArrowException, OSError) as exc:
                self._report(f"removed {path.name}, an unindexed file that cannot be read ({exc})")
                path.unlink()
                continue
            if first is not None and first > last_indexed and first >= self._log_start:
                # Sealed, then the crash came before indexing: the .log still has the same
                # records and is dropped below as already sealed.
                table = pq.read_table(path, columns=["offset", "timestamp"])
                data = path.read_bytes()
                info = self._segment_info(path.name, table, len(data), crc32c.crc32c(data))
                self._catalog.add_segment(info)
                indexed.append(info)
                last_indexed = info.last_offset
            else:
                # Left behind by a compaction or retention interrupted around its commit:
                # its records are either in the index already or deleted on purpose.
                path.unlink()
        present = []
        self._indexed_end = indexed[-1].last_offset + 1 if indexed else self._log_start
        for seg in indexed:
            if (self.dir / seg.path).exists():
                present.append(seg)
            elif seg.last_offset < self._log_start:
                self._catalog.replace_segments([seg], [], self._log_start)  # deleted by retention
            else:
                missing = Damage(seg.base_offset, seg.last_offset + 1, seg.path, "the segment file is missing")
                self.damage.append(missing)
                self._report(f"segment {seg.path} (offsets {seg.base_offset}..{seg.last_offset}) is missing")
        return present

    def _recover_active(self) -> None:
        for path in sorted(self.dir.glob("*.log")):
            found = scan(path)
            file_base = int(path.name[:20])
            for rng, first_after in zip(found.damaged, found.after_damage, strict=True):
                before = found.batches[first_after - 1] if first_after else None
                start = file_base if before is None else before.column(0)[0].as_py() + before.num_rows
                end = found.batches[first_after].column(0)[0].as_py()
                if end > start:
                    self.damage.append(Damage(start, end, path.name, f"bytes {rng.start}..{rng.end - 1} are damaged"))
                self._report(
                    f"{path.name}: bytes {rng.start}..{rng.end - 1} are damaged (offsets {start}..{end - 1}); "
                    "the valid batches after them are kept"
                )
            if found.damaged_tail is not None and found.damaged_tail_offsets is not None:
                rng, (start, end) = found.damaged_tail, found.damaged_tail_offsets
                self.damage.append(Damage(start, end, path.name, f"bytes {rng.start}..{rng.end - 1} are damaged"))
                self._report(
                    f"{path.name}: the last batch (bytes {rng.start}..{rng.end - 1}, offsets {start}..{end - 1}) "
                    "fails its checksum"
                )
            if found.torn_tail:
                at = self._tail_offset(found, file_base)
                self._report(
                    f"{path.name}: cut a torn tail of {found.torn_tail} bytes at offset {at} "
                    "(a write a crash cut short; it was never acknowledged)"
                )
            kept = [b for b in found.batches if b.num_rows and b.column(0)[0].as_py() >= self._next]
            damaged = bool(found.damaged) or found.damaged_tail is not None
            if not kept and not damaged:
                path.unlink()  # sealed already (crash before the .log was removed) or empty
                continue
            if len(kept) != len(found.batches) and not damaged:
                path.unlink()
                self._active_file = None
                for batch in kept:
                    self._write_frame(batch, sync=True)
            else:
                self._active_file = ActiveSegmentFile(path, valid_length=found.valid_length)
            for batch in kept:
                self._active_bases.append(batch.column(0)[0].as_py())
                self._active_batches.append(batch)
                self._active_fields.append(None)
                self._next = max(self._next, self._active_bases[-1] + batch.num_rows)
            if found.damaged_tail_offsets is not None:  # acknowledged offsets: never reuse them
                self._next = max(self._next, found.damaged_tail_offsets[1])
        self._next = max(self._next, self._log_start)

    @staticmethod
    def _tail_offset(found: Scan, file_base: int) -> int:
        if not found.batches:
            return file_base
        last = found.batches[-1]
        return int(last.column(0)[0].as_py()) + last.num_rows

    def _segment_info(self, name: str, table: pa.Table, size: int, checksum: int) -> SegmentInfo:
        """The index entry of segment file ``name`` holding ``table`` (offset and timestamp
        columns at least), ``size`` bytes with crc32c ``checksum``."""
        ts = table.column("timestamp").cast(pa.int64())
        offsets = table.column("offset")
        return SegmentInfo(
            self.topic, self.partition, int(name[:20]), pc.max(offsets).as_py(), table.num_rows,
            pc.min(ts).as_py(), pc.max(ts).as_py(), size, name, checksum,
        )  # fmt: skip

    # PartitionLog -----------------------------------------------------------------------
    @property
    def log_start_offset(self) -> int:
        return self._log_start

    @property
    def high_watermark(self) -> int:
        return self._next

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
            self._write_frame(batch, sync=False)
            if not self._active_batches or self._active_since_ms is None:
                self._active_since_ms = now_ms
            self._active_bases.append(base)
            self._active_batches.append(batch)
            self._active_fields.append(fields)
            self._next = base + batch.num_rows
            if self._active_file is not None and self._active_file.size >= self.segment_bytes:
                try:
                    self.roll()
                except StorageError as exc:
                    log.warning("%s/%d: sealing the active segment failed, will retry: %s",
                                self.topic, self.partition, exc)  # fmt: skip
            active = self._active_file
        if sync and active is not None:
            active.sync()  # outside the lock: appends go on, concurrent syncs are shared
        return base

    def sync(self) -> None:
        """Make every record appended so far durable (a shared fsync round, see active.py)."""
        with self._lock:
            active = self._active_file
        if active is not None:
            active.sync()  # a file rolled meanwhile was sealed into a durable segment

    def _write_frame(self, batch: pa.RecordBatch, *, sync: bool) -> None:
        if self._active_file is None:
            base = batch.column(0)[0].as_py()
            try:
                self._active_file = ActiveSegmentFile(self.dir / _name(base, ".log"))
                fsync_dir(self.dir)
            except OSError as exc:
                raise StorageError(f"could not create an active segment in {self.dir}: {exc.strerror or exc}") from exc
        self._active_file.append(encode_frame(batch))
        if sync:
            self._active_file.sync()

    def read(self, offset: int, max_records: int) -> pa.Table:
        """Up to ``max_records`` records from ``offset``. Reading stops before damaged
        offsets; a read that starts in them raises :class:`CorruptSegmentError`."""
        with self._lock:
            offset = max(offset, self._log_start)
            stop = self._damage_stop(offset)
            pieces: list[pa.Table | pa.RecordBatch] = []
            wanted = max_records
            i = bisect.bisect_right([s.base_offset for s in self._segments], offset) - 1
            for seg in self._segments[max(i, 0) :]:
                if wanted <= 0 or seg.base_offset >= stop:
                    break
                if seg.last_offset < offset:
                    continue
                try:
                    table = self._load(seg)
                except CorruptSegmentError:
                    if pieces:
                        break  # serve what comes before the damage; the next read raises
                    raise
                start = self._row_of(table, seg.base_offset, offset)
                piece = table.slice(start, wanted)
                pieces.append(piece)
                wanted -= piece.num_rows
            j = max(bisect.bisect_right(self._active_bases, offset) - 1, 0)
            for base, batch in zip(self._active_bases[j:], self._active_batches[j:], strict=True):
                if wanted <= 0 or base >= stop:
                    break
                if base + batch.num_rows <= offset:
                    continue
                piece = batch.slice(max(offset - base, 0), wanted)
                pieces.append(piece)
                wanted -= piece.num_rows
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

    @staticmethod
    def _row_of(table: pa.Table, base: int, offset: int) -> int:
        """Row of the first record at or after ``offset`` in a sealed segment."""
        if offset <= base:
            return 0
        offsets = table.column("offset")
        guess = offset - base  # dense unless compacted
        if guess < table.num_rows and offsets[guess].as_py() == offset:
            return guess
        return int(pc.sum(pc.less(offsets, offset)).as_py() or 0)  # offsets are sorted

    def _load(self, seg: SegmentInfo) -> pa.Table:
        table = self._cache.get(seg.path)
        if table is None:
            data = self.verify(seg)
            try:
                table = pq.read_table(pa.BufferReader(data), columns=BASE_COLUMNS, schema=None)
                table = table.select(BASE_COLUMNS).cast(RECORD_SCHEMA).combine_chunks()
            except (pa.ArrowException, OSError) as exc:
                raise self._damaged(seg, f"it cannot be read as Parquet ({exc})") from exc
            self._cache[seg.path] = table
            while len(self._cache) > _CACHE_SEGMENTS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(seg.path)
        return table

    def verify(self, seg: SegmentInfo) -> bytes:
        """The segment's bytes, checked against its indexed checksum; a mismatch or a
        missing file marks the segment damaged and raises :class:`CorruptSegmentError`."""
        try:
            data = read_verified(self.dir / seg.path, seg.checksum)
        except FileNotFoundError as exc:
            raise self._damaged(seg, "the segment file is missing") from exc
        except ValueError as exc:
            raise self._damaged(seg, str(exc)) from exc
        self._verified.add(seg.path)
        return data

    def verify_once(self, seg: SegmentInfo) -> None:
        """:meth:`verify` unless this process already verified the (immutable) file."""
        if seg.path not in self._verified:
            self.verify(seg)

    def _damaged(self, seg: SegmentInfo, reason: str) -> CorruptSegmentError:
        damage = Damage(seg.base_offset, seg.last_offset + 1, seg.path, reason)
        with self._lock:
            if damage not in self.damage:
                self.damage.append(damage)
                log.error("%s/%d: %s: %s", self.topic, self.partition, seg.path, reason)
        return damage.error(self.topic, self.partition)

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        target = pa.scalar(timestamp_ms, pa.int64())
        with self._lock:
            tables: list[pa.Table | pa.RecordBatch] = [
                self._load(s) for s in self._segments if s.max_timestamp >= timestamp_ms
            ]
            tables.extend(self._active_batches)
        for table in tables:
            hits = pc.greater_equal(table.column("timestamp").cast(pa.int64()), target)
            index = pc.index(hits, True).as_py()
            if index >= 0:
                return int(table.column("offset")[index].as_py())
        return None

    def sealed_segments(self) -> list[SegmentInfo]:
        with self._lock:
            return list(self._segments)

    def segment_path(self, seg: SegmentInfo) -> Path:
        return self.dir / seg.path

    def active_table(self) -> pa.Table:
        with self._lock:
            return pa.Table.from_batches(self._active_batches, schema=RECORD_SCHEMA)

    def snapshot(self) -> LogSnapshot:
        """Sealed segments and active records of one instant, the files pinned until
        :meth:`LogSnapshot.release` (call it, or use it in a ``try/finally``)."""
        with self._lock:
            segments = list(self._segments)
            for seg in segments:
                self._pins[seg.path] += 1
            snap = LogSnapshot(
                segments, [self.dir / s.path for s in segments],
                pa.Table.from_batches(self._active_batches, schema=RECORD_SCHEMA),
                list(self.damage), self._log_start, combine_typed_fields(self._active_fields),
            )  # fmt: skip
        snap._release = lambda: self._unpin([s.path for s in segments])
        return snap

    def _unpin(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                self._pins[name] -= 1
                if self._pins[name] <= 0:
                    del self._pins[name]
                    if name in self._unpinned_deletes:
                        self._unpinned_deletes.discard(name)
                        (self.dir / name).unlink(missing_ok=True)
            if self._discarded and not self._pins:
                self._remove_folder()

    def _remove_file(self, name: str) -> None:
        """Remove a segment file no longer indexed, now or when its last reader is done."""
        self._cache.pop(name, None)
        self._verified.discard(name)
        if self._pins.get(name):
            self._unpinned_deletes.add(name)
        else:
            (self.dir / name).unlink(missing_ok=True)

    def size_bytes(self) -> int:
        with self._lock:
            active = self._active_file.size if self._active_file else 0
            return active + sum(s.bytes for s in self._segments)

    # sealing, retention, compaction -----------------------------------------------------
    def roll(self) -> None:
        with self._lock:
            if not self._active_batches:
                return
            table = pa.Table.from_batches(self._active_batches, schema=RECORD_SCHEMA)
            fields = combine_typed_fields(self._active_fields)
            seg = self._write_segment(table, _name(table.column("offset")[0].as_py(), ".parquet"), fields=fields)
            crash_point("seal.before-index")
            self._catalog.add_segment(seg)
            self._segments.append(seg)
            crash_point("seal.before-unlink-active")
            assert self._active_file is not None
            self._active_file.close(durable_elsewhere=True)  # the fsynced segment has it all
            self._active_file.path.unlink()
            self._active_file = None
            self._active_batches, self._active_bases, self._active_fields = [], [], []
            self._active_since_ms = None

    def roll_if_older(self, segment_ms: int, now_ms: int) -> bool:
        """Seal the active segment when its first record was appended ``segment_ms`` or
        more before ``now_ms`` (both on the broker's clock): ``segment.ms``, measured from
        the append rather than, as Kafka does, from the first record's timestamp, which
        for historical data would seal at every append. Whether it sealed."""
        with self._lock:
            if self._closed or not self._active_batches:
                return False
            if self._active_since_ms is None:  # recovered at open: its age starts now
                self._active_since_ms = now_ms
            if now_ms - self._active_since_ms < segment_ms:
                return False
            self.roll()
            return True

    def _write_segment(self, table: pa.Table, name: str, *, fields: pa.StructArray | None = None) -> SegmentInfo:
        """Write ``table`` durably as the segment file ``name`` (temporary name, fsync,
        rename, fsync of the directory); nothing is left behind if that fails. ``fields``:
        the values' fields typed already (else the JSON text is parsed)."""
        if fields is None:
            fields = expand_json_objects(table)
        if fields is not None:
            table = table.append_column(FIELDS_COLUMN, fields)
        sink = pa.BufferOutputStream()
        pq.write_table(
            table, sink, row_group_size=ROW_GROUP_SIZE, compression="zstd", write_statistics=True,
            write_page_checksum=True,
        )  # fmt: skip
        data = sink.getvalue()
        tmp = self.dir / (name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            crash_point("seal.before-rename")
            os.replace(tmp, self.dir / name)
            fsync_dir(self.dir)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"could not write segment {self.dir / name}: {exc.strerror or exc}") from exc
        self._verified.add(name)
        return self._segment_info(name, table, data.size, crc32c.crc32c(data))

    def apply_retention(self, config: dict[str, Any], now_ms: int) -> int:
        if "delete" not in config["cleanup.policy"]:
            return 0
        retention_ms, retention_bytes = config["retention.ms"], config["retention.bytes"]
        with self._lock:
            if retention_ms >= 0 and self._active_batches:
                newest = pc.max(self.active_table().column("timestamp").cast(pa.int64())).as_py()
                if newest < now_ms - retention_ms:
                    self.roll()  # everything active has expired: seal so it can be deleted
            doomed: list[SegmentInfo] = []
            total = self.size_bytes()
            for seg in self._segments:
                expired = retention_ms >= 0 and seg.max_timestamp < now_ms - retention_ms
                too_big = retention_bytes >= 0 and total - seg.bytes >= retention_bytes
                if not (expired or too_big):
                    break
                doomed.append(seg)
                total -= seg.bytes
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
            if self._active_batches and offset > self._active_bases[0]:
                # Recovery takes what the active file holds below the log start as sealed
                # already: seal it now, so the log start always falls in a sealed segment.
                self.roll()
            doomed = [s for s in self._segments if s.last_offset < offset]
            if doomed:
                self._swap_segments(doomed, [], offset, point="delete-records.after-commit")
            else:
                self._catalog.set_log_start_offset(self.topic, self.partition, offset)
                self._log_start = offset
                self.damage = [d for d in self.damage if d.end > self._log_start]
            return self._log_start

    def _swap_segments(self, old: list[SegmentInfo], new: list[SegmentInfo], log_start: int, *, point: str) -> None:
        """Replace ``old`` by ``new`` in the index (the commit point), then drop the files."""
        self._catalog.replace_segments(old, new, log_start)
        crash_point(point)
        gone = {s.path for s in old}
        self._segments = sorted([s for s in self._segments if s.path not in gone] + new,
                                key=lambda s: s.base_offset)  # fmt: skip
        self._log_start = max(self._log_start, log_start)
        self.damage = [d for d in self.damage if d.end > self._log_start]
        for name in gone - {n.path for n in new}:
            self._remove_file(name)

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
            if not self._segments:
                return 0
            if self.damage:
                log.warning("%s/%d: not compacted while it has damaged offsets (see `streamlab check`)",
                            self.topic, self.partition)  # fmt: skip
                return 0
            sealed = pa.concat_tables([self._load(s) for s in self._segments])
            everything = pa.concat_tables([sealed, self.active_table()])
            settled = everything if stable_offset is None else everything.filter(
                pc.less(everything.column("offset"), stable_offset))  # fmt: skip
            keyed = pc.and_(pc.is_valid(settled.column("key")), pc.not_equal(settled.column("key_format"), FMT_CONTROL))
            if aborted:
                keyed = pc.and_(keyed, pa.array(~_in_ranges(settled.column("offset"), aborted)))
            latest = settled.filter(keyed).group_by("key").aggregate([("offset", "max")])
            keep = pc.or_(
                pc.is_in(sealed.column("offset"), latest.column("offset_max")),
                pc.or_(pc.is_null(sealed.column("key")), pc.equal(sealed.column("key_format"), FMT_CONTROL)),
            )
            if stable_offset is not None:
                keep = pc.or_(keep, pc.greater_equal(sealed.column("offset"), stable_offset))
            if aborted:
                keep = pc.and_(keep, pa.array(~_in_ranges(sealed.column("offset"), aborted)))
            old_tombstone = pc.and_(
                pc.is_null(sealed.column("value")),
                pc.less(sealed.column("timestamp").cast(pa.int64()), now_ms - config["delete.retention.ms"]),
            )
            kept = sealed.filter(pc.and_(keep, pc.invert(old_tombstone)))
            removed = sealed.num_rows - kept.num_rows
            if removed == 0:
                return 0
            old = list(self._segments)
            # The output gets a name no file has had, so until the index swap commits the
            # old segments are untouched and a crash leaves the log as it was.
            new = []
            if kept.num_rows:
                seg = self._write_segment(kept, _name(old[0].base_offset, f".{time.time_ns():x}.parquet"))
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
        with self._lock:
            segments = list(self._segments)
        for seg in segments:
            try:
                data = self.verify(seg)
                pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
            except CorruptSegmentError:
                pass  # recorded in self.damage by verify()
            except (pa.ArrowException, OSError) as exc:
                self._damaged(seg, f"it cannot be read as Parquet ({exc})")
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
            indexed = {s.path: s for s in self._catalog.segments(self.topic, self.partition)}
            aside = quarantine / self.topic / str(self.partition)
            left: list[Damage] = []
            for damage in self.damage:
                where = f"{self.topic}/{self.partition} offsets {damage.start}..{damage.end - 1}"
                if damage.path in indexed:
                    seg = indexed.pop(damage.path)
                    self._catalog.replace_segments([seg], [], self._log_start)
                    self._segments = [s for s in self._segments if s.path != seg.path]
                    self._cache.pop(seg.path, None)
                    if (self.dir / seg.path).exists():
                        aside.mkdir(parents=True, exist_ok=True)
                        os.replace(self.dir / seg.path, aside / seg.path)
                        done.append(f"{where}: removed {seg.path} ({damage.reason}); kept it as {aside / seg.path}")
                    else:
                        done.append(f"{where}: removed the missing segment {seg.path} from the index")
                elif self._active_file is not None and self._active_file.path.name == damage.path:
                    aside.mkdir(parents=True, exist_ok=True)
                    path = self._active_file.path
                    shutil.copyfile(path, aside / path.name)
                    self._active_file.close()
                    tmp = path.with_name(path.name + ".tmp")
                    with open(tmp, "wb") as fh:
                        for batch in self._active_batches:
                            fh.write(encode_frame(batch))
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(tmp, path)
                    fsync_dir(self.dir)
                    self._active_file = ActiveSegmentFile(path)
                    done.append(f"{where}: cut the damaged bytes from {path.name}; the original is {aside / path.name}")
                else:
                    left.append(damage)
                    done.append(f"{where}: {damage.path} is damaged and was left as it is")
            self.damage = left
        return done

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._active_file is not None:
                self._active_file.close()
            self._cache.clear()
            self.wire_batches.close()

    def discard(self) -> None:
        """Remove the files of this closed log (its topic was deleted). Segments a reader's
        snapshot still holds stay until that reader is done: a replay or query that began
        before the deletion reads what it began with."""
        with self._lock:
            self._discarded = True
            if not self._pins:
                self._remove_folder()
                return
            for path in self.dir.iterdir():
                if path.name not in self._pins:
                    path.unlink(missing_ok=True)

    @property
    def pinned(self) -> bool:
        """Whether a reader's snapshot still holds files of this log."""
        with self._lock:
            return bool(self._pins)

    def _remove_folder(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the topic's folder, once its last partition is gone
            self.dir.parent.rmdir()


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
