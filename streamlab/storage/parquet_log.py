"""The default engine: an active segment file per partition, sealed into Parquet.

Layout under the data directory::

    topics/<topic>/<partition>/<base offset, 20 digits>.log       active segment (active.py)
    topics/<topic>/<partition>/<base offset, 20 digits>.parquet   sealed segments

A sealed segment is written to a temporary name, fsynced, renamed, then indexed in the
catalog, and only then is the active file removed. Recovery on open reconciles the
files with the catalog, so a crash at any step loses nothing and duplicates nothing.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamlab.storage.active import ActiveSegmentFile, encode_frame, recover
from streamlab.storage.catalog import Catalog, SegmentInfo
from streamlab.storage.fields import expand_json_objects
from streamlab.storage.schema import BASE_COLUMNS, FIELDS_COLUMN, RECORD_SCHEMA, with_base_offset

ROW_GROUP_SIZE = 64 * 1024
_CACHE_SEGMENTS = 4


def _name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ParquetPartitionLog:
    def __init__(self, root: Path, catalog: Catalog, topic: str, partition: int, segment_bytes: int) -> None:
        self.topic, self.partition = topic, partition
        self.dir = root / "topics" / topic / str(partition)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._catalog = catalog
        self._lock = threading.RLock()
        self.segment_bytes = segment_bytes
        self._cache: OrderedDict[str, pa.Table] = OrderedDict()
        self._active_batches: list[pa.RecordBatch] = []
        self._active_bases: list[int] = []
        self._active_file: ActiveSegmentFile | None = None
        self._log_start = catalog.log_start_offset(topic, partition)
        self._segments = self._reconcile_segments()
        self._next = self._segments[-1].last_offset + 1 if self._segments else self._log_start
        self._recover_active()

    # recovery ---------------------------------------------------------------------------
    def _reconcile_segments(self) -> list[SegmentInfo]:
        indexed = {s.path: s for s in self._catalog.segments(self.topic, self.partition)}
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()  # a seal that crashed before its rename: the .log still has the data
        on_disk = {p.name for p in self.dir.glob("*.parquet")}
        for name in list(indexed):
            if name not in on_disk:
                del indexed[name]  # removed by retention just before a crash
        for name in sorted(on_disk - indexed.keys()):
            table = pq.read_table(self.dir / name, columns=["offset", "timestamp"])
            indexed[name] = self._segment_info(name, table, (self.dir / name).stat().st_size)
            self._catalog.add_segment(indexed[name])  # renamed, but crashed before indexing
        return sorted(indexed.values(), key=lambda s: s.base_offset)

    def _recover_active(self) -> None:
        logs = sorted(self.dir.glob("*.log"))
        for path in logs:
            batches, valid = recover(path)
            kept = [b for b in batches if b.num_rows and b.column(0)[0].as_py() >= self._next]
            if not kept:
                path.unlink()  # sealed already (crash before the .log was removed) or empty
                continue
            if len(kept) != len(batches):
                path.unlink()
                self._active_file = None
                for batch in kept:
                    self._write_frame(batch, sync=True)
            else:
                self._active_file = ActiveSegmentFile(path, valid_length=valid)
            for batch in kept:
                self._active_bases.append(batch.column(0)[0].as_py())
                self._active_batches.append(batch)
                self._next = self._active_bases[-1] + batch.num_rows
        self._next = max(self._next, self._log_start)

    def _segment_info(self, name: str, table: pa.Table, size: int) -> SegmentInfo:
        ts = table.column("timestamp").cast(pa.int64())
        offsets = table.column("offset")
        return SegmentInfo(
            self.topic, self.partition, int(name[:20]), pc.max(offsets).as_py(), table.num_rows,
            pc.min(ts).as_py(), pc.max(ts).as_py(), size, name,
        )  # fmt: skip

    # PartitionLog -----------------------------------------------------------------------
    @property
    def log_start_offset(self) -> int:
        return self._log_start

    @property
    def high_watermark(self) -> int:
        return self._next

    def append(self, batch: pa.RecordBatch, *, sync: bool) -> int:
        with self._lock:
            base = self._next
            batch = with_base_offset(batch, base)
            self._write_frame(batch, sync=False)
            self._active_bases.append(base)
            self._active_batches.append(batch)
            self._next = base + batch.num_rows
            if self._active_file is not None and self._active_file.size >= self.segment_bytes:
                self.roll()
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
            self._active_file = ActiveSegmentFile(self.dir / _name(base, ".log"))
            _fsync_dir(self.dir)
        self._active_file.append(encode_frame(batch))
        if sync:
            self._active_file.sync()

    def read(self, offset: int, max_records: int) -> pa.Table:
        with self._lock:
            offset = max(offset, self._log_start)
            pieces: list[pa.Table | pa.RecordBatch] = []
            wanted = max_records
            i = bisect.bisect_right([s.base_offset for s in self._segments], offset) - 1
            for seg in self._segments[max(i, 0) :]:
                if wanted <= 0:
                    break
                if seg.last_offset < offset:
                    continue
                table = self._load(seg)
                start = self._row_of(table, seg.base_offset, offset)
                piece = table.slice(start, wanted)
                pieces.append(piece)
                wanted -= piece.num_rows
            j = max(bisect.bisect_right(self._active_bases, offset) - 1, 0)
            for base, batch in zip(self._active_bases[j:], self._active_batches[j:], strict=True):
                if wanted <= 0:
                    break
                if base + batch.num_rows <= offset:
                    continue
                piece = batch.slice(max(offset - base, 0), wanted)
                pieces.append(piece)
                wanted -= piece.num_rows
        if not pieces:
            return RECORD_SCHEMA.empty_table()
        return pa.Table.from_batches(
            [b for p in pieces for b in (p.to_batches() if isinstance(p, pa.Table) else [p])],
            schema=RECORD_SCHEMA,
        )

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
            table = pq.read_table(self.dir / seg.path, columns=BASE_COLUMNS, schema=None)
            table = table.select(BASE_COLUMNS).cast(RECORD_SCHEMA).combine_chunks()
            self._cache[seg.path] = table
            while len(self._cache) > _CACHE_SEGMENTS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(seg.path)
        return table

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
            seg = self._write_segment(table)
            self._segments.append(seg)
            self._catalog.add_segment(seg)
            assert self._active_file is not None
            self._active_file.close(durable_elsewhere=True)  # the fsynced segment has it all
            self._active_file.path.unlink()
            self._active_file = None
            self._active_batches, self._active_bases = [], []

    def _write_segment(self, table: pa.Table, base_offset: int | None = None) -> SegmentInfo:
        fields = expand_json_objects(table)
        if fields is not None:
            table = table.append_column(FIELDS_COLUMN, fields)
        base = table.column("offset")[0].as_py() if base_offset is None else base_offset
        name = _name(base, ".parquet")
        tmp = self.dir / (name + ".tmp")
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_SIZE, compression="zstd", write_statistics=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / name)
        _fsync_dir(self.dir)
        return self._segment_info(name, table, (self.dir / name).stat().st_size)

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
                self._drop_segments(doomed, [], doomed[-1].last_offset + 1)
            return len(doomed)

    def _drop_segments(self, old: list[SegmentInfo], new: list[SegmentInfo], log_start: int) -> None:
        self._catalog.replace_segments(old, new, log_start)
        for seg in old:
            self._cache.pop(seg.path, None)
            if seg.path not in {n.path for n in new}:
                (self.dir / seg.path).unlink(missing_ok=True)
        gone = {s.path for s in old}
        self._segments = sorted([s for s in self._segments if s.path not in gone] + new,
                                key=lambda s: s.base_offset)  # fmt: skip
        self._log_start = max(self._log_start, log_start)

    def compact(self, config: dict[str, Any], now_ms: int) -> int:
        if "compact" not in config["cleanup.policy"]:
            return 0
        with self._lock:
            if not self._segments:
                return 0
            sealed = pa.concat_tables([self._load(s) for s in self._segments])
            everything = pa.concat_tables([sealed, self.active_table()])
            latest = (
                everything.filter(pc.is_valid(everything.column("key"))).group_by("key").aggregate([("offset", "max")])
            )
            keep = pc.or_(
                pc.is_in(sealed.column("offset"), latest.column("offset_max")),
                pc.is_null(sealed.column("key")),
            )
            old_tombstone = pc.and_(
                pc.is_null(sealed.column("value")),
                pc.less(sealed.column("timestamp").cast(pa.int64()), now_ms - config["delete.retention.ms"]),
            )
            kept = sealed.filter(pc.and_(keep, pc.invert(old_tombstone)))
            removed = sealed.num_rows - kept.num_rows
            if removed == 0:
                return 0
            old = list(self._segments)
            # The compacted segment keeps the first old segment's name and offset range
            # start, replacing that file atomically; a crash before the catalog update
            # leaves a consistent (if partly compacted) log.
            new = [self._write_segment(kept, base_offset=old[0].base_offset)] if kept.num_rows else []
            if new:
                new[0] = dataclasses.replace(new[0], last_offset=old[-1].last_offset)
            self._drop_segments(old, new, self._log_start)
            return removed

    def close(self) -> None:
        with self._lock:
            if self._active_file is not None:
                self._active_file.close()
            self._cache.clear()


class ParquetLogEngine:
    def __init__(self, root: Path, catalog: Catalog) -> None:
        self.root, self.catalog = root, catalog

    def open_log(self, topic: str, partition: int, *, segment_bytes: int) -> ParquetPartitionLog:
        return ParquetPartitionLog(self.root, self.catalog, topic, partition, segment_bytes)

    def delete_topic_files(self, topic: str) -> None:
        shutil.rmtree(self.root / "topics" / topic, ignore_errors=True)
