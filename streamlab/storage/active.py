"""The active segment: an append-only file of checksummed Arrow IPC record batches.

Frame layout (little-endian): ``b"SLB1" | u32 length | u32 crc32c(payload) | payload``,
where the payload is one Arrow IPC-serialised record batch. A crash can leave a torn
frame at the tail; :func:`scan` keeps every whole frame and the log cuts the file back to
the last one, so nothing half-written is ever visible and nothing acknowledged is lost
(acknowledgement happens only after the whole frame was written, and fsynced when asked).
Damage in the middle of the file is told apart from a torn tail: valid frames follow it.
:class:`ActiveSegment` keeps the batches in memory beside the file, for reads and the seal.
"""

from __future__ import annotations

import bisect
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import crc32c
import pyarrow as pa

from streamlab.errors import StorageError
from streamlab.model.fields import combine_typed_fields
from streamlab.model.schema import RECORD_SCHEMA
from streamlab.storage.append_file import AppendFile
from streamlab.storage.base import Damage
from streamlab.storage.state_lines import fsync_dir

MAGIC = b"SLB1"
_HEADER = struct.Struct("<4sII")


def frame_parts(batch: pa.RecordBatch) -> tuple[bytes, pa.Buffer]:
    """A frame's header and payload, written one after the other: the payload is not copied
    into one buffer with its header."""
    payload = batch.serialize()
    return _HEADER.pack(MAGIC, payload.size, crc32c.crc32c(payload)), payload


@dataclass(frozen=True, slots=True)
class DamagedRange:
    """Bytes ``[start, end)`` of an active segment that hold no valid frame, between two
    valid ones: damage in the middle of the file, not a torn tail."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Scan:
    """What :func:`scan` found in an active segment file."""

    batches: list[pa.RecordBatch]
    valid_length: int  # bytes up to the end of the last valid frame
    damaged: list[DamagedRange]  # damage with valid frames after it
    after_damage: list[int]  # for each damaged range, the index of the first batch after it
    torn_tail: int  # bytes after the last valid frame (a write cut short by a crash)
    # A whole last frame that fails its checksum but still parses, with the offsets it
    # names following on: acknowledged data damaged in place, not a torn write.
    damaged_tail: DamagedRange | None = None
    damaged_tail_offsets: tuple[int, int] | None = None  # [first, end) of the damaged frame


def _payload_at(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The payload of a whole frame starting at ``pos`` and the crc32c its header gives,
    else None (no frame there, or one cut short: a torn write)."""
    if pos + _HEADER.size > len(data):
        return None
    magic, length, crc = _HEADER.unpack_from(data, pos)
    start, end = pos + _HEADER.size, pos + _HEADER.size + length
    if magic != MAGIC or end > len(data):
        return None
    return data[start:end], crc


def _batch_of(payload: bytes, *, validate: bool) -> pa.RecordBatch | None:
    try:
        batch = pa.ipc.read_record_batch(pa.py_buffer(payload), RECORD_SCHEMA)
        if validate:
            batch.validate(full=True)
    except (pa.ArrowException, ValueError):
        return None  # a payload that is not ours (under a valid checksum, or none checked)
    return batch


def _frame_at(data: bytes, pos: int) -> pa.RecordBatch | None:
    """The batch of a whole, checksum-valid frame starting at ``pos``, else None."""
    frame = _payload_at(data, pos)
    if frame is None or crc32c.crc32c(frame[0]) != frame[1]:
        return None
    return _batch_of(frame[0], validate=False)


def scan(path: Path) -> Scan:
    """Every whole, checksum-valid frame in ``path``, and where the others are.

    A bad frame followed by a valid one is damage in the middle (a flipped bit, a zeroed
    block): it is reported, never skipped silently, and the frames after it are kept. A bad
    frame with nothing valid after it is a torn tail: a write a crash cut short, which was
    never acknowledged, since acknowledgement waits for the whole frame.
    """
    data = path.read_bytes()
    batches: list[pa.RecordBatch] = []
    damaged: list[DamagedRange] = []
    after: list[int] = []
    pos = valid = 0
    while pos + _HEADER.size <= len(data):
        batch = _frame_at(data, pos)
        if batch is not None:
            batches.append(batch)
            pos = valid = _frame_end(data, pos)
            continue
        resume = _next_valid_frame(data, pos + 1)
        if resume is None:
            expected = _batch_end(batches[-1]) if batches else None
            unchecked = _unchecked_frame_at(data, pos)
            if unchecked is not None and unchecked.num_rows and (expected is None or _first(unchecked) == expected):
                end = _frame_end(data, pos)
                offsets = (_first(unchecked), _batch_end(unchecked))
                return Scan(batches, end, damaged, after, len(data) - end, DamagedRange(pos, end), offsets)
            break
        damaged.append(DamagedRange(pos, resume))
        after.append(len(batches))
        pos = resume
    return Scan(batches, valid, damaged, after, len(data) - valid)


def _first(batch: pa.RecordBatch) -> int:
    return int(batch.column(0)[0].as_py())


def _batch_end(batch: pa.RecordBatch) -> int:
    return _first(batch) + batch.num_rows


def _unchecked_frame_at(data: bytes, pos: int) -> pa.RecordBatch | None:
    """The batch of a whole frame at ``pos`` whose payload parses, checksum unchecked."""
    frame = _payload_at(data, pos)
    return None if frame is None else _batch_of(frame[0], validate=True)


def _frame_end(data: bytes, pos: int) -> int:
    _, length, _ = _HEADER.unpack_from(data, pos)
    return pos + _HEADER.size + int(length)


def _next_valid_frame(data: bytes, pos: int) -> int | None:
    while True:
        pos = data.find(MAGIC, pos)
        if pos < 0:
            return None
        if _frame_at(data, pos) is not None:
            return pos
        pos += 1


def _tail_offset(found: Scan, file_base: int) -> int:
    return _batch_end(found.batches[-1]) if found.batches else file_base


class ActiveSegment:
    """The records of one partition appended since the last seal: their batches in memory
    (what reads, snapshots and the seal use) and the frames file that makes them durable.
    The partition log calls it under its lock."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.batches: list[pa.RecordBatch] = []
        self._bases: list[int] = []
        # Per batch, its values' fields as the producer had them typed (send_many), or None:
        # the segment is sealed with them instead of parsing the JSON text back. Memory
        # only: after a restart the text is parsed, which gives the same types.
        self._fields: list[pa.StructArray | None] = []
        self.since_ms: int | None = None  # clock time of the first append (segment.ms)
        self._file: AppendFile | None = None

    def recover(self, next_offset: int, report: Callable[[str], None]) -> tuple[int, list[Damage]]:
        """Take back what the ``.log`` files of the directory hold from ``next_offset`` on
        (below it: sealed already), cutting torn tails and reporting damage. Returns the
        offset the next record gets and the damaged offsets found."""
        damage: list[Damage] = []
        for path in sorted(self.dir.glob("*.log")):
            found = scan(path)
            file_base = int(path.name[:20])
            for rng, first_after in zip(found.damaged, found.after_damage, strict=True):
                start = _batch_end(found.batches[first_after - 1]) if first_after else file_base
                end = _first(found.batches[first_after])
                if end > start:
                    damage.append(Damage(start, end, path.name, f"bytes {rng.start}..{rng.end - 1} are damaged"))
                report(
                    f"{path.name}: bytes {rng.start}..{rng.end - 1} are damaged (offsets {start}..{end - 1}); "
                    "the valid batches after them are kept"
                )
            if found.damaged_tail is not None and found.damaged_tail_offsets is not None:
                rng, (start, end) = found.damaged_tail, found.damaged_tail_offsets
                damage.append(Damage(start, end, path.name, f"bytes {rng.start}..{rng.end - 1} are damaged"))
                report(
                    f"{path.name}: the last batch (bytes {rng.start}..{rng.end - 1}, offsets {start}..{end - 1}) "
                    "fails its checksum"
                )
            if found.torn_tail:
                at = _tail_offset(found, file_base)
                report(
                    f"{path.name}: cut a torn tail of {found.torn_tail} bytes at offset {at} "
                    "(a write a crash cut short; it was never acknowledged)"
                )
            kept = [b for b in found.batches if b.num_rows and _first(b) >= next_offset]
            damaged = bool(found.damaged) or found.damaged_tail is not None
            if not kept and not damaged:
                path.unlink()  # sealed already (crash before the .log was removed) or empty
                continue
            if len(kept) != len(found.batches) and not damaged:
                path.unlink()
                self._file = None
                for batch in kept:
                    self._write_frame(batch, sync=True)
            else:
                self._file = AppendFile(path, valid_length=found.valid_length)
            for batch in kept:
                self._remember(_first(batch), batch, None)
                next_offset = max(next_offset, _batch_end(batch))
            if found.damaged_tail_offsets is not None:  # acknowledged offsets: never reuse them
                next_offset = max(next_offset, found.damaged_tail_offsets[1])
        return next_offset, damage

    def append(self, batch: pa.RecordBatch, *, base: int, fields: pa.StructArray | None, now_ms: int | None) -> None:
        """Write ``batch`` (its offsets from ``base`` on) as a frame and keep it, with its
        typed ``fields``; ``now_ms`` starts the segment's age at its first record."""
        self._write_frame(batch, sync=False)
        if not self.batches or self.since_ms is None:
            self.since_ms = now_ms
        self._remember(base, batch, fields)

    def _remember(self, base: int, batch: pa.RecordBatch, fields: pa.StructArray | None) -> None:
        self._bases.append(base)
        self.batches.append(batch)
        self._fields.append(fields)

    def _write_frame(self, batch: pa.RecordBatch, *, sync: bool) -> None:
        if self._file is None:
            try:
                self._file = AppendFile(self.dir / f"{_first(batch):020d}.log")
                fsync_dir(self.dir)
            except OSError as exc:
                raise StorageError(f"could not create an active segment in {self.dir}: {exc.strerror or exc}") from exc
        self._file.append(*frame_parts(batch))
        if sync:
            self._file.sync()

    @property
    def file(self) -> AppendFile | None:
        """The frames file, to sync outside the log's lock (None while nothing is active)."""
        return self._file

    @property
    def base_offset(self) -> int | None:
        return self._bases[0] if self._bases else None

    @property
    def size(self) -> int:
        return self._file.size if self._file is not None else 0

    def read(self, offset: int, stop: int, wanted: int) -> list[pa.RecordBatch]:
        """Up to ``wanted`` records from ``offset``, none from ``stop`` on."""
        pieces: list[pa.RecordBatch] = []
        j = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        for base, batch in zip(self._bases[j:], self.batches[j:], strict=True):
            if wanted <= 0 or base >= stop:
                break
            if base + batch.num_rows <= offset:
                continue
            piece = batch.slice(max(offset - base, 0), wanted)
            pieces.append(piece)
            wanted -= piece.num_rows
        return pieces

    def table(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=RECORD_SCHEMA)

    def typed_fields(self) -> pa.StructArray | None:
        """The values' fields as their producers typed them, if every batch has them."""
        return combine_typed_fields(self._fields)

    def forget_sealed(self) -> None:
        """Forget the records and remove the file: a durable segment holds them now."""
        assert self._file is not None
        self._file.close(durable_elsewhere=True)
        self._file.path.unlink()
        self._file = None
        self.batches, self._bases, self._fields = [], [], []
        self.since_ms = None

    def holds(self, file_name: str) -> bool:
        return self._file is not None and self._file.path.name == file_name

    def cut_damage(self, aside: Path) -> str:
        """Rewrite the file with its valid frames only, keeping the original under
        ``aside``; says what was done."""
        assert self._file is not None
        path = self._file.path
        aside.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, aside / path.name)
        self._file.close()
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            for batch in self.batches:
                fh.writelines(frame_parts(batch))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(self.dir)
        self._file = AppendFile(path)
        return f"cut the damaged bytes from {path.name}; the original is {aside / path.name}"

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
