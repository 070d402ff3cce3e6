"""A partition's sealed segments: Parquet files, each indexed by one catalog row.

A segment file is written under a temporary name, fsynced and renamed before the catalog
names it, and removed only after the catalog stopped naming it (and once no reader's
snapshot holds it). Its crc32c is indexed with it: a file that fails it, or is missing,
is damage, reported to the partition log, never served.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import shutil
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path

import crc32c
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamlab.errors import CorruptSegmentError, StorageError
from streamlab.model.fields import expand_json_objects
from streamlab.model.schema import BASE_COLUMNS, RECORD_SCHEMA
from streamlab.model.views import FIELDS_COLUMN
from streamlab.storage.base import Damage
from streamlab.storage.catalog import Catalog, SegmentInfo
from streamlab.storage.faults import crash_point
from streamlab.storage.state_lines import fsync_dir

ROW_GROUP_SIZE = 64 * 1024
_SEGMENT_NAME = re.compile(r"[0-9]{20}(\.[0-9a-f]+)?\.parquet")
_CACHE_SEGMENTS = 4


def segment_name(base_offset: int, suffix: str = "") -> str:
    """A sealed segment's file name; ``suffix`` (``.<hex>``) tells a compaction's output apart."""
    return f"{base_offset:020d}{suffix}.parquet"


def read_verified(path: Path, checksum: int | None) -> bytes:
    """The bytes of a sealed segment, checked against the crc32c it was indexed with."""
    data = path.read_bytes()  # FileNotFoundError: the caller reports the segment missing
    if checksum is not None and crc32c.crc32c(data) != checksum:
        raise ValueError(f"checksum mismatch (crc32c {crc32c.crc32c(data):#010x}, indexed {checksum:#010x})")
    return data


class SealedSegments:
    """The sealed segments of one partition, in offset order: their catalog rows, their
    files, a small cache of verified tables, and the files readers' snapshots pin.

    ``lock`` is the partition log's; ``record_damage`` tells the log of a damaged segment.
    """

    def __init__(
        self, directory: Path, catalog: Catalog, topic: str, partition: int, *, lock: threading.RLock,
        record_damage: Callable[[Damage], None],
    ) -> None:  # fmt: skip
        self.dir, self.topic, self.partition = directory, topic, partition
        self._catalog = catalog
        self._lock = lock
        self._record_damage = record_damage
        self.segments: list[SegmentInfo] = []
        self._cache: OrderedDict[str, pa.Table] = OrderedDict()
        self._verified: set[str] = set()  # files whose checksum this process checked
        self._pins: Counter[str] = Counter()  # files held by reader snapshots
        self._unpinned_deletes: set[str] = set()  # files to remove when their last reader is done
        self._discarded = False  # the topic was deleted: the files go once no reader holds them

    # recovery ---------------------------------------------------------------------------
    def reconcile(self, log_start: int, report: Callable[[str], None]) -> tuple[int, list[Damage]]:
        """Make the index and the files agree after a crash (see ``parquet_log``). Returns
        the end of the indexed offsets and the indexed segments whose files are missing."""
        indexed = []
        for seg in sorted(self._catalog.segments(self.topic, self.partition), key=lambda s: s.base_offset):
            if _SEGMENT_NAME.fullmatch(seg.path):
                indexed.append(seg)
            else:  # names read back are checked like names we make: never a path elsewhere
                report(f"dropped a catalog row naming {seg.path!r}, which is not a segment file name")
                self._catalog.replace_segments([seg], [], log_start)
        names = {s.path for s in indexed}
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()  # a seal or compaction that crashed before its rename
        last_indexed = indexed[-1].last_offset if indexed else log_start - 1
        for path in sorted(self.dir.glob("*.parquet")):
            if path.name in names:
                continue
            try:
                first = pc.min(pq.read_table(path, columns=["offset"]).column("offset")).as_py()
            except (pa.ArrowException, OSError) as exc:
                report(f"removed {path.name}, an unindexed file that cannot be read ({exc})")
                path.unlink()
                continue
            if first is not None and first > last_indexed and first >= log_start:
                # Sealed, then the crash came before indexing: the .log still has the same
                # records and is dropped by the active segment's recovery as already sealed.
                table = pq.read_table(path, columns=["offset", "timestamp"])
                data = path.read_bytes()
                info = self._info(path.name, table, len(data), crc32c.crc32c(data))
                self._catalog.add_segment(info)
                indexed.append(info)
                last_indexed = info.last_offset
            else:
                # Left behind by a compaction or retention interrupted around its commit:
                # its records are either in the index already or deleted on purpose.
                path.unlink()
        missing: list[Damage] = []
        indexed_end = indexed[-1].last_offset + 1 if indexed else log_start
        for seg in indexed:
            if (self.dir / seg.path).exists():
                self.segments.append(seg)
            elif seg.last_offset < log_start:
                self._catalog.replace_segments([seg], [], log_start)  # deleted by retention
            else:
                missing.append(Damage(seg.base_offset, seg.last_offset + 1, seg.path, "the segment file is missing"))
                report(f"segment {seg.path} (offsets {seg.base_offset}..{seg.last_offset}) is missing")
        return indexed_end, missing

    def _info(self, name: str, table: pa.Table, size: int, checksum: int) -> SegmentInfo:
        """The index entry of segment file ``name`` holding ``table`` (offset and timestamp
        columns at least), ``size`` bytes with crc32c ``checksum``."""
        ts = table.column("timestamp").cast(pa.int64())
        offsets = table.column("offset")
        return SegmentInfo(
            self.topic, self.partition, int(name[:20]), pc.max(offsets).as_py(), table.num_rows,
            pc.min(ts).as_py(), pc.max(ts).as_py(), size, name, checksum,
        )  # fmt: skip

    # writing and swapping -----------------------------------------------------------------
    def seal(self, table: pa.Table, fields: pa.StructArray | None) -> None:
        """Write the active segment's records ``table`` as a segment and index it (the
        seal's commit point). ``fields``: the values' fields typed already, or None."""
        seg = self.write(table, segment_name(table.column("offset")[0].as_py()), fields=fields)
        crash_point("seal.before-index")
        self._catalog.add_segment(seg)
        self.segments.append(seg)

    def write(self, table: pa.Table, name: str, *, fields: pa.StructArray | None = None) -> SegmentInfo:
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
        return self._info(name, table, data.size, crc32c.crc32c(data))

    def replace(self, old: list[SegmentInfo], new: list[SegmentInfo], log_start: int, *, point: str) -> None:
        """Replace ``old`` by ``new`` in the index (the commit point, with the log start),
        then drop the files."""
        self._catalog.replace_segments(old, new, log_start)
        crash_point(point)
        gone = {s.path for s in old}
        self.segments = sorted([s for s in self.segments if s.path not in gone] + new,
                               key=lambda s: s.base_offset)  # fmt: skip
        for name in gone - {n.path for n in new}:
            self._remove_file(name)

    def _remove_file(self, name: str) -> None:
        """Remove a segment file no longer indexed, now or when its last reader is done."""
        self._cache.pop(name, None)
        self._verified.discard(name)
        if self._pins.get(name):
            self._unpinned_deletes.add(name)
        else:
            (self.dir / name).unlink(missing_ok=True)

    # reading ------------------------------------------------------------------------------
    def read(self, offset: int, stop: int, wanted: int) -> list[pa.Table]:
        """Up to ``wanted`` records from ``offset``, none from ``stop`` on. A damaged
        segment after the first piece ends the read there (the next read raises)."""
        pieces: list[pa.Table] = []
        i = bisect.bisect_right([s.base_offset for s in self.segments], offset) - 1
        for seg in self.segments[max(i, 0) :]:
            if wanted <= 0 or seg.base_offset >= stop:
                break
            if seg.last_offset < offset:
                continue
            try:
                table = self.load(seg)
            except CorruptSegmentError:
                if pieces:
                    break  # serve what comes before the damage; the next read raises
                raise
            piece = table.slice(_row_of(table, seg.base_offset, offset), wanted)
            pieces.append(piece)
            wanted -= piece.num_rows
        return pieces

    def load(self, seg: SegmentInfo) -> pa.Table:
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
        self._record_damage(damage)
        return damage.error(self.topic, self.partition)

    @property
    def size_bytes(self) -> int:
        return sum(s.bytes for s in self.segments)

    # checking and repair ------------------------------------------------------------------
    def check(self) -> None:
        """Verify every segment (checksum, then a full Parquet decode with page checksums);
        damage found is recorded."""
        with self._lock:
            segments = list(self.segments)
        for seg in segments:
            try:
                data = self.verify(seg)
                pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
            except CorruptSegmentError:
                pass  # recorded by verify()
            except (pa.ArrowException, OSError) as exc:
                self._damaged(seg, f"it cannot be read as Parquet ({exc})")

    def indexed(self) -> dict[str, SegmentInfo]:
        """The catalog's rows for this partition by file name, missing files included."""
        return {s.path: s for s in self._catalog.segments(self.topic, self.partition)}

    def quarantine(self, seg: SegmentInfo, reason: str, aside: Path, log_start: int) -> str:
        """Take the damaged segment ``seg`` out of the index, keeping its file (if any)
        under ``aside``; says what was done."""
        self._catalog.replace_segments([seg], [], log_start)
        self.segments = [s for s in self.segments if s.path != seg.path]
        self._cache.pop(seg.path, None)
        if not (self.dir / seg.path).exists():
            return f"removed the missing segment {seg.path} from the index"
        aside.mkdir(parents=True, exist_ok=True)
        os.replace(self.dir / seg.path, aside / seg.path)
        return f"removed {seg.path} ({reason}); kept it as {aside / seg.path}"

    # readers' pins and the end of the log -------------------------------------------------
    def pin(self) -> list[SegmentInfo]:
        """The segments of this instant, their files kept until :meth:`unpin`."""
        segments = list(self.segments)
        for seg in segments:
            self._pins[seg.path] += 1
        return segments

    def unpin(self, names: list[str]) -> None:
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

    @property
    def pinned(self) -> bool:
        with self._lock:
            return bool(self._pins)

    def close(self) -> None:
        self._cache.clear()

    def discard(self) -> None:
        """Remove the partition's folder, or every file in it no reader holds (the folder
        goes when the last reader is done)."""
        self._discarded = True
        if not self._pins:
            self._remove_folder()
            return
        for path in self.dir.iterdir():
            if path.name not in self._pins:
                path.unlink(missing_ok=True)

    def _remove_folder(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the topic's folder, once its last partition is gone
            self.dir.parent.rmdir()


def _row_of(table: pa.Table, base: int, offset: int) -> int:
    """Row of the first record at or after ``offset`` in a sealed segment."""
    if offset <= base:
        return 0
    offsets = table.column("offset")
    guess = offset - base  # dense unless compacted
    if guess < table.num_rows and offsets[guess].as_py() == offset:
        return guess
    return int(pc.sum(pc.less(offsets, offset)).as_py() or 0)  # offsets are sorted
