"""Idempotent producers: producer ids, and dropping the batches that retries send twice.

An idempotent producer gets a producer id from InitProducerId and numbers the records it
sends to each partition from 0. The rules, as in Kafka's ``ProducerStateManager``, kept
per (producer id, partition):

* a batch whose first and last sequence equal one of the last five stored batches of the
  same epoch is a retry: it is not stored again and is answered with the original offset;
* a batch must otherwise continue the sequence (last + 1, wrapping at 2**31 - 1), or it
  gets OUT_OF_ORDER_SEQUENCE_NUMBER; a new, higher epoch must start again at 0;
* an older epoch gets INVALID_PRODUCER_EPOCH;
* a producer with no known state is accepted at any sequence (Kafka does the same, since
  retention may have removed a producer's state).

The state survives restarts, because a broker killed after storing a batch but before
acknowledging it receives that batch again from the retrying client. Before a batch is
appended, an entry naming the offsets it will get is written to
``<data>/server/producer-state.log``; on open, an entry counts only if its offsets are in
the log (the high watermark is past them), so a crash between the two writes loses
nothing and duplicates nothing. With ``acks=-1`` the entry is fsynced with the data before the
acknowledgement (:func:`streamlab.broker.produce.append_from_producer` names both files'
syncs, which the Produce handler runs in parallel, shared with concurrent requests).
Producer ids are handed out from blocks recorded in ``<data>/server/producer-ids`` so that
no id is ever reused.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from streamlab.broker.core import Broker
from streamlab.broker.producer_ids import ProducerIds
from streamlab.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from streamlab.storage.append_file import AppendFile
from streamlab.storage.state_lines import encode_line, parse_lines, replace_durably

log = logging.getLogger(__name__)

CACHED_BATCHES = 5  # Kafka's max.in.flight limit for idempotent producers
MAX_SEQUENCE = 2**31 - 1
MAX_EPOCH = 2**15 - 1
_COMPACT_AFTER_LINES = 100_000

Key = tuple[int, str, int]  # producer id, topic, partition


@dataclass(frozen=True, slots=True)
class BatchMeta:
    first_seq: int
    last_seq: int
    base_offset: int
    count: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    batches: deque[BatchMeta] = field(default_factory=lambda: deque(maxlen=CACHED_BATCHES))


class ProducerStates:
    """Producer ids and per-partition sequence state, durable in the data directory."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.dir = broker.data_dir / "server"
        self.dir.mkdir(exist_ok=True)
        self._state_path = self.dir / "producer-state.log"
        self._lock = threading.Lock()  # the state file, the dicts below
        self._partition_locks: dict[tuple[str, int], threading.Lock] = {}
        self._entries: dict[Key, ProducerEntry] = {}
        self._pending: dict[tuple[Key, int], dict[str, Any]] = {}  # written, not yet appended
        self._ids = ProducerIds(self.dir)
        self._entries = self._recover()
        self._file: AppendFile | None = None
        self._rewrite()

    # producer ids -----------------------------------------------------------------------
    def new_producer_id(self) -> tuple[int, int]:
        """A producer id never handed out before, with epoch 0."""
        return self._ids.new()

    # recovery ---------------------------------------------------------------------------
    def _recover(self) -> dict[Key, ProducerEntry]:
        try:
            data = self._state_path.read_bytes()
        except FileNotFoundError:
            return {}
        entries: dict[Key, ProducerEntry] = {}
        for doc in parse_lines(data):
            if "deleted" in doc:
                entries = {k: v for k, v in entries.items() if k[1] != doc["deleted"]}
                continue
            key: Key = (doc["pid"], doc["t"], doc["p"])
            meta = BatchMeta(doc["f"], doc["l"], doc["o"], doc["n"])
            if doc.get("abort"):
                entry = entries.get(key)
                if entry is not None and meta in entry.batches:
                    entry.batches.remove(meta)
                continue
            entry = entries.get(key)
            if entry is None or doc["e"] != entry.epoch:
                entry = entries[key] = ProducerEntry(doc["e"])
            entry.batches.append(meta)
        return {key: entry for key, entry in entries.items() if self._keep_stored(key, entry)}

    def _keep_stored(self, key: Key, entry: ProducerEntry) -> bool:
        """Drop batches whose data never reached the log (a crash between the two writes)."""
        _, topic, partition = key
        state = self._broker.topics.get(topic)
        if state is None or partition >= state.partitions:
            return False
        high_watermark = state.logs[partition].high_watermark
        kept = [b for b in entry.batches if b.base_offset + b.count <= high_watermark]
        entry.batches = deque(kept, maxlen=CACHED_BATCHES)
        return bool(kept)

    def _rewrite(self) -> None:
        """Replace the state file with the live state (at open, and when it grows long)."""
        lines = [
            encode_line({"pid": k[0], "t": k[1], "p": k[2], "e": e.epoch, "f": b.first_seq, "l": b.last_seq,
                   "o": b.base_offset, "n": b.count})
            for k, e in self._entries.items() for b in e.batches
        ]  # fmt: skip
        lines.extend(encode_line(doc) for doc in self._pending.values())
        replace_durably(self._state_path, b"".join(lines))
        if self._file is not None:
            self._file.close(durable_elsewhere=True)  # the fsynced new file holds the live state
        self._file = AppendFile(self._state_path, flags=os.O_WRONLY)
        self._lines = len(lines)

    def _appendencode_line(self, doc: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.append(encode_line(doc))
        self._lines += 1

    def sync(self) -> None:
        """Make every entry written so far durable (an fsync round shared by concurrent callers)."""
        with self._lock:
            file = self._file
        if file is not None:
            file.sync()  # outside the lock; a file replaced meanwhile was rewritten durably

    # sequence checks --------------------------------------------------------------------
    @contextmanager
    def partition(self, topic: str, partition: int) -> Iterator[None]:
        """Serialises check, append and record for one partition (hold it around all three)."""
        with self._lock:
            lock = self._partition_locks.setdefault((topic, partition), threading.Lock())
        with lock:
            yield

    def check(self, topic: str, partition: int, pid: int, epoch: int, first_seq: int, last_seq: int) -> int | None:
        """None if the batch is new and in sequence; its original base offset if it is a retry.

        Raises :class:`OutOfOrderSequenceError` or :class:`InvalidProducerEpochError`.
        """
        with self._lock:
            entry = self._entries.get((pid, topic, partition))
        if entry is None or not entry.batches:
            return None
        where = f"producer {pid} epoch {epoch} on {topic}[{partition}]"
        if epoch < entry.epoch:
            raise InvalidProducerEpochError(f"{where}: epoch {entry.epoch} is current", topic=topic)
        if epoch > entry.epoch:
            if first_seq != 0:
                raise OutOfOrderSequenceError(f"{where}: a new epoch must start at sequence 0, got {first_seq}")
            return None
        for batch in entry.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch.base_offset
        expected = (entry.batches[-1].last_seq + 1) % (MAX_SEQUENCE + 1)
        if first_seq != expected:
            raise OutOfOrderSequenceError(
                f"{where}: expected sequence {expected}, got {first_seq}", topic=topic, partition=partition
            )
        return None

    def begin(
        self, topic: str, partition: int, pid: int, epoch: int, seqs: tuple[int, int], base: int, count: int
    ) -> None:
        """Write down, before the append, which offsets (``base``, ``count`` records) the
        batch with sequences ``seqs`` (first, last) is about to get."""
        first_seq, last_seq = seqs
        doc = {"pid": pid, "t": topic, "p": partition, "e": epoch, "f": first_seq, "l": last_seq, "o": base, "n": count}
        with self._lock:
            self._appendencode_line(doc)
            self._pending[((pid, topic, partition), base)] = doc

    def abort(self, topic: str, partition: int, pid: int, base: int) -> None:
        """The append announced by :meth:`begin` failed: that entry must never count."""
        with self._lock:
            doc = self._pending.pop(((pid, topic, partition), base), None)
            if doc is not None:
                self._appendencode_line({**doc, "abort": 1})

    def commit(self, topic: str, partition: int, pid: int, base: int, *, stored_at: int, sync: bool = False) -> None:
        """The append announced by :meth:`begin` at ``base`` is stored (at ``stored_at``,
        which differs only if something appended behind our back): remember it for retries.
        ``sync`` makes the entry durable now; the Produce handler instead calls :meth:`sync`
        once per request, beside the partitions' fsyncs."""
        key: Key = (pid, topic, partition)
        with self._lock:
            doc = self._pending.pop((key, base))
            if stored_at != base:
                log.error("%s[%d]: batch expected at offset %d was stored at %d", topic, partition, base, stored_at)
                self._appendencode_line({**doc, "abort": 1})
                doc = {**doc, "o": stored_at}
                self._appendencode_line(doc)
            entry = self._entries.get(key)
            if entry is None or entry.epoch != doc["e"]:
                entry = self._entries[key] = ProducerEntry(doc["e"])
            entry.batches.append(BatchMeta(doc["f"], doc["l"], doc["o"], doc["n"]))
            if self._lines > _COMPACT_AFTER_LINES:
                self._rewrite()
        if sync:
            self.sync()

    def forget_topic(self, topic: str) -> None:
        """A deleted topic's producer state must not apply to a new topic of that name."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k[1] != topic}
            self._appendencode_line({"deleted": topic})
            file = self._file
        assert file is not None
        file.sync()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
