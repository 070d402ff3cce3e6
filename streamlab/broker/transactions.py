"""Transactions: a coordinator for transactional ids, markers in the logs, the last stable offset.

What Kafka's transaction coordinator and its per-partition producer-state do, for one node:

* a transactional id owns a producer id and an epoch; :meth:`TransactionCoordinator.init_producer`
  bumps the epoch (a new producer with the same id fences the old one) and aborts whatever
  transaction the previous epoch left open;
* a transaction collects partitions (AddPartitionsToTxn) and groups (AddOffsetsToTxn), the
  transactional batches written to those partitions, and offsets to commit for the groups
  (TxnOffsetCommit), which the group sees only once the transaction commits;
* ending it (EndTxn, a timeout, a new epoch, a restart) writes a *marker* to each of its
  partitions: a control record stored as a row whose ``key_format`` and ``value_format``
  are :data:`~streamlab.model.serde.FMT_CONTROL`, its key and value Kafka's control key
  (version, type) and value (version, coordinator epoch); a header names the producer;
* per partition, the offsets of the batches of aborted transactions are kept (the stored
  record schema has no producer id column, so this index says which rows a committed
  reader must skip), and the *last stable offset* (LSO) is the first offset of the oldest
  transaction still open there (the high watermark if none).

Durability follows :mod:`streamlab.broker.producer_state`: every change is a checksummed line
in ``<data>/server/transactions.log``, written (and fsynced) before the action it
announces. A transactional batch's line is fsynced before the batch is appended, so an
aborted transaction can never leave a stored batch that the index does not know; on open,
a batch line counts only if its offsets are in the log. Open transactions found on
restart are aborted (markers written) and their epoch bumped, as a timeout would: their
producers cannot know what was lost, and read-committed consumers must not wait for a
producer that may never come back. The file is rewritten compactly on open.

The state file and the index are in :mod:`.transaction_state`, the markers and what
readers see around them in :mod:`.transaction_markers` (a read-committed consumer's
fetch in :func:`.fetch.fetch_committed`), timeouts in :mod:`.transaction_expiry`; this
module is the coordinator's state transitions, one coordinator per open broker:
:mod:`.transaction_registry` makes it and hands it out.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import pyarrow as pa

from streamlab.broker import produce
from streamlab.broker.core import Broker
from streamlab.broker.offsets import commit as commit_offsets
from streamlab.broker.transaction_expiry import ExpiryTimer, overdue, timed_out
from streamlab.broker.transaction_markers import CONTROL_ABORT, CONTROL_COMMIT, marker_batch
from streamlab.broker.transaction_state import (
    FILE_NAME,
    TP,
    Range,
    StateFile,
    Transaction,
    TransactionIndex,
    clear,
    drop_unstored,
    init_line,
    replay_state,
    state_docs,
    unfinished,
)
from streamlab.errors import (
    ConcurrentTransactionsError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    ProducerFencedError,
    StreamlabError,
)
from streamlab.model.types import OffsetAndMetadata, TopicPartition
from streamlab.storage.append_file import AppendFile

log = logging.getLogger(__name__)


MAX_TIMEOUT_MS: Final = 900_000  # Kafka's transaction.max.timeout.ms default
MAX_EPOCH: Final = 2**15 - 1
_COMPACT_AFTER_LINES = 100_000


class TransactionCoordinator:
    """Transactional ids, their transactions, and the per-partition transaction index.

    ``new_producer_id`` hands out producer ids never used before (shared with idempotent
    producers); ``partition_lock(topic, partition)`` is the lock the Produce path holds
    around "check, note, append" for a partition, so a marker never lands between a
    batch's noted offsets and its append. Every method may block on disk: call from a
    worker thread.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        new_producer_id: Callable[[], tuple[int, int]],
        partition_lock: Callable[[str, int], AbstractContextManager[None]],
        clock: Callable[[], float] = time.time,
        on_open: Callable[[TransactionCoordinator], None] = lambda coordinator: None,
        on_shutdown: Callable[[TransactionCoordinator], None] = lambda coordinator: None,
    ) -> None:
        self._broker = broker
        self._new_producer_id = new_producer_id
        self._partition_lock = partition_lock
        self._clock = clock
        self.dir = broker.data_dir / "server"
        self.dir.mkdir(exist_ok=True)
        self.path = self.dir / FILE_NAME
        self._lock = threading.Lock()  # the dicts, the index and the file
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        self._txns, self.index = replay_state(data)
        self._by_pid = {t.producer_id: t.transactional_id for t in self._txns.values()}
        drop_unstored(self.index, self._high_watermark)
        self._state = StateFile(self.path, owner=f"the transaction coordinator of {broker.data_dir}")
        self._rewrite()
        self._timer: ExpiryTimer | None = None
        self._holders = 1
        self._on_shutdown = on_shutdown
        on_open(self)  # before recovering: the markers it writes may look the coordinator up
        try:
            for txn in list(self._txns.values()):
                if unfinished(txn):
                    log.warning("transaction %r was open at shutdown: completing it", txn.transactional_id)
                    with txn.lock:
                        self._complete(txn, commit=txn.state == "PrepareCommit", bump=txn.state == "Ongoing")
        except BaseException:
            self.shutdown()  # never left in use half-recovered
            raise

    # the state file -------------------------------------------------------------------
    def _log_start(self, tp: TP) -> int | None:
        state = self._broker.topics.get(tp[0])
        return state.logs[tp[1]].log_start_offset if state is not None and tp[1] < state.partitions else None

    def _high_watermark(self, tp: TP) -> int:
        state = self._broker.topics.get(tp[0])
        return state.logs[tp[1]].high_watermark if state is not None and tp[1] < state.partitions else -1

    def _rewrite(self) -> None:
        self._state.rewrite(state_docs(self._txns, self.index, self._log_start))

    def _write(self, *docs: dict[str, Any]) -> AppendFile:
        """Append lines (under ``self._lock``); the caller syncs the returned file if needed."""
        return self._state.append(*docs)

    def _write_durably(self, *docs: dict[str, Any]) -> None:
        with self._lock:
            file = self._write(*docs)
        file.sync()  # outside the lock: a shared fsync round (storage/append_file.py)

    def _maybe_compact(self) -> None:
        with self._lock:
            if self._state.lines > _COMPACT_AFTER_LINES:
                self._rewrite()

    # the transactional id's producer ------------------------------------------------------
    def _txn_lock(self, transactional_id: str) -> threading.Lock | None:
        with self._lock:
            txn = self._txns.get(transactional_id)
            return None if txn is None else txn.lock

    def init_producer(
        self, transactional_id: str, timeout_ms: int, *, producer_id: int = -1, epoch: int = -1
    ) -> tuple[int, int]:
        """InitProducerId for a transactional id: (producer id, epoch), the epoch bumped.

        A transaction the previous epoch left open is aborted first. ``producer_id`` and
        ``epoch`` (KIP-360, -1 if not given) must name the current producer, or it is fenced.
        """
        if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
            raise InvalidTransactionTimeoutError(
                f"transaction.timeout.ms={timeout_ms} must be between 1 and transaction.max.timeout.ms={MAX_TIMEOUT_MS}"
            )
        with self._lock:
            txn = self._txns.get(transactional_id)
            created = txn is None
            if txn is None:
                pid, new_epoch = self._new_producer_id()
                txn = self._txns[transactional_id] = Transaction(transactional_id, pid, new_epoch, timeout_ms)
                self._by_pid[pid] = transactional_id
        with txn.lock:
            if created:
                self._write_durably(init_line(txn))
                return txn.producer_id, txn.epoch
            if producer_id >= 0 and (producer_id, epoch) != (txn.producer_id, txn.epoch):
                raise ProducerFencedError(
                    f"producer {producer_id} epoch {epoch} of {transactional_id!r} is not the current one "
                    f"({txn.producer_id} epoch {txn.epoch})"
                )
            if txn.state in ("Ongoing", "PrepareAbort", "PrepareCommit"):
                self._complete(txn, commit=txn.state == "PrepareCommit", bump=False)
            self._bump(txn)
            txn.timeout_ms = timeout_ms
            self._write_durably(init_line(txn))
            return txn.producer_id, txn.epoch

    def _bump(self, txn: Transaction) -> None:
        """A new epoch (a new producer id once the epochs are used up), in memory."""
        with self._lock:
            if txn.epoch + 1 >= MAX_EPOCH:
                self._by_pid.pop(txn.producer_id, None)
                txn.producer_id, txn.epoch = self._new_producer_id()
                self._by_pid[txn.producer_id] = txn.transactional_id
            else:
                txn.epoch += 1

    def _checked(self, transactional_id: str, producer_id: int, epoch: int) -> Transaction:
        """The transaction of a request from producer (``producer_id``, ``epoch``); hold its lock."""
        txn = self._txns.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            raise InvalidProducerIdMappingError(
                f"producer id {producer_id} is not the one of transactional id {transactional_id!r}"
            )
        if epoch < txn.epoch:
            raise ProducerFencedError(
                f"producer {producer_id} epoch {epoch} of {transactional_id!r} is fenced by epoch {txn.epoch}"
            )
        if epoch > txn.epoch:
            raise InvalidProducerEpochError(f"producer {producer_id} epoch {epoch} is newer than {txn.epoch}")
        if txn.state.startswith("Prepare"):
            raise ConcurrentTransactionsError(f"the last transaction of {transactional_id!r} is still completing")
        return txn

    @contextlib.contextmanager
    def _operation(self, transactional_id: str, producer_id: int, epoch: int) -> Iterator[Transaction]:
        lock = self._txn_lock(transactional_id)
        if lock is None:
            raise InvalidProducerIdMappingError(f"transactional id {transactional_id!r} has no producer")
        with lock:
            yield self._checked(transactional_id, producer_id, epoch)

    def _begin(self, txn: Transaction) -> None:
        if txn.state != "Ongoing":
            clear(txn)
            txn.state, txn.started_ms = "Ongoing", int(self._clock() * 1000)

    def add_partitions(self, transactional_id: str, producer_id: int, epoch: int, partitions: Iterable[TP]) -> None:
        """AddPartitionsToTxn: the producer will write to ``partitions`` in its transaction."""
        wanted = list(partitions)
        for topic, partition in wanted:
            self._broker.log(topic, partition)  # unknown topic / partition: a clear error
        with self._operation(transactional_id, producer_id, epoch) as txn:
            new = [tp for tp in wanted if not (txn.state == "Ongoing" and tp in txn.partitions)]
            if not new:
                return
            self._begin(txn)
            txn.partitions.update(new)
            self._write_durably(*({"k": "add", "id": transactional_id, "t": t, "p": p, "ts": txn.started_ms}
                                  for t, p in new))  # fmt: skip

    def in_transaction(self, transactional_id: str, producer_id: int, epoch: int, partitions: Iterable[TP]) -> set[TP]:
        """KIP-890 verification: which of ``partitions`` are part of the ongoing transaction."""
        with self._operation(transactional_id, producer_id, epoch) as txn:
            return {tp for tp in partitions if txn.state == "Ongoing" and tp in txn.partitions}

    def add_offsets(self, transactional_id: str, producer_id: int, epoch: int, group: str) -> None:
        """AddOffsetsToTxn: the transaction will commit offsets of ``group``."""
        with self._operation(transactional_id, producer_id, epoch) as txn:
            if txn.state == "Ongoing" and group in txn.groups:
                return
            self._begin(txn)
            txn.groups.add(group)
            self._write_durably({"k": "grp", "id": transactional_id, "g": group, "ts": txn.started_ms})

    def commit_offsets(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        group: str,
        offsets: dict[TP, tuple[int, str]],
    ) -> None:
        """TxnOffsetCommit: offsets the group gets when (and only if) the transaction commits."""
        with self._operation(transactional_id, producer_id, epoch) as txn:
            if txn.state != "Ongoing" or group not in txn.groups:
                raise InvalidTxnStateError(f"group {group!r} was not added to the transaction of {transactional_id!r}")
            txn.offsets.setdefault(group, {}).update(offsets)
            self._write_durably(*({"k": "off", "id": transactional_id, "g": group, "t": t, "p": p, "o": o, "m": m}
                                  for (t, p), (o, m) in offsets.items()))  # fmt: skip

    def end(self, transactional_id: str, producer_id: int, epoch: int, *, commit: bool) -> None:
        """EndTxn: commit or abort the ongoing transaction (markers written before returning)."""
        with self._operation(transactional_id, producer_id, epoch) as txn:
            if txn.state == "Ongoing":
                self._complete(txn, commit=commit, bump=False)
            elif txn.state == ("CompleteAbort" if commit else "CompleteCommit"):
                raise InvalidTxnStateError(
                    f"cannot {'commit' if commit else 'abort'}: the last transaction of {transactional_id!r} "
                    f"ended {txn.state[8:].lower()}ed"
                )
            # Empty, or a retry of the EndTxn that completed it: nothing to do.

    def _complete(self, txn: Transaction, *, commit: bool, bump: bool) -> None:
        """Write the decision, the markers, the offsets; hold ``txn.lock``."""
        tid, pid, epoch = txn.transactional_id, txn.producer_id, txn.epoch
        with self._lock:
            txn.state = "PrepareCommit" if commit else "PrepareAbort"
            file = self._write({"k": "end", "id": tid, "c": commit})
        file.sync()
        kind = CONTROL_COMMIT if commit else CONTROL_ABORT
        now_ms = int(self._clock() * 1000)
        for topic, partition in sorted(txn.partitions - txn.marked):
            try:
                self._write_marker(topic, partition, pid, epoch, kind, now_ms)
            except StreamlabError as exc:  # a deleted topic: nothing left to mark
                log.warning("no %s marker for %s[%d]: %s", "commit" if commit else "abort", topic, partition, exc)
            with self._lock:
                self.index.resolve((topic, partition), pid, aborted=not commit)
                txn.marked.add((topic, partition))
                file = self._write({"k": "m", "id": tid, "pid": pid, "t": topic, "p": partition, "c": commit})
        if commit:
            for group, offsets in txn.offsets.items():
                try:
                    commit_offsets(self._broker, group, {TopicPartition(t, p): OffsetAndMetadata(o, m)
                                                         for (t, p), (o, m) in offsets.items()})  # fmt: skip
                except StreamlabError as exc:
                    log.warning("transaction %r: offsets of group %r not committed: %s", tid, group, exc)
        with self._lock:
            txn.state = "CompleteCommit" if commit else "CompleteAbort"
            clear(txn)
            file = self._write({"k": "done", "id": tid, "c": commit})
        file.sync()
        if bump:
            self._bump(txn)
            self._write_durably(init_line(txn))
        log.info("transaction %r of producer %d epoch %d %s", tid, pid, epoch, "committed" if commit else "aborted")
        self._maybe_compact()

    def _write_marker(self, topic: str, partition: int, pid: int, epoch: int, kind: int, now_ms: int) -> None:
        with self._partition_lock(topic, partition):
            produce.append(self._broker, topic, partition, marker_batch(pid, epoch, kind, now_ms), sync=True)

    # the produce path ---------------------------------------------------------------------
    def before_append(self, topic: str, partition: int, producer_id: int, epoch: int, base: int, count: int) -> None:
        """A transactional batch is about to be stored at ``base``: check and note it
        (durably). Call under the partition lock, after the idempotence check."""
        tp = (topic, partition)
        with self._lock:
            tid = self._by_pid.get(producer_id)
            txn = None if tid is None else self._txns[tid]
            if txn is None:
                raise InvalidProducerIdMappingError(f"producer id {producer_id} has no transactional id")
            if epoch < txn.epoch:
                raise InvalidProducerEpochError(
                    f"producer {producer_id} epoch {epoch} is fenced by epoch {txn.epoch}", topic=topic
                )
            if txn.state != "Ongoing" or tp not in txn.partitions:
                raise InvalidTxnStateError(
                    f"{topic}[{partition}] is not part of an ongoing transaction of {tid!r}",
                    topic=topic,
                    partition=partition,
                )
            self.index.add_open(tp, producer_id, (base, base + count))
            file = self._write({"k": "b", "pid": producer_id, "t": topic, "p": partition, "o": base, "n": count})
        file.sync()

    def append(
        self, topic: str, partition: int, producer_id: int, epoch: int, rows: pa.RecordBatch, *, sync: bool
    ) -> int:
        """Store ``rows`` as a transactional batch (the whole produce path, for an embedded
        producer; the Kafka server does these steps around its idempotence check). The
        partition must have been added with :meth:`add_partitions`. Returns the base offset."""
        partition_log = self._broker.log(topic, partition)
        # The append lock as well: under a server's coordinator the partition lock is the
        # server's, which a plain embedded append never takes.
        with self._partition_lock(topic, partition), partition_log.append_lock:
            base = partition_log.high_watermark
            self.before_append(topic, partition, producer_id, epoch, base, rows.num_rows)
            try:
                return produce.append(self._broker, topic, partition, rows, sync=sync)
            except BaseException:
                self.append_failed(topic, partition, producer_id, base, rows.num_rows)
                raise

    def append_failed(self, topic: str, partition: int, producer_id: int, base: int, count: int) -> None:
        with self._lock:
            self.index.drop_open((topic, partition), producer_id, (base, base + count))
            self._write({"k": "x", "pid": producer_id, "t": topic, "p": partition, "o": base, "n": count})

    # reading --------------------------------------------------------------------------------
    def last_stable_offset(self, topic: str, partition: int, high_watermark: int) -> int:
        with self._lock:
            return self.index.last_stable_offset(topic, partition, high_watermark)

    def aborted_in(self, topic: str, partition: int, start: int, end: int) -> list[Range]:
        with self._lock:
            return self.index.aborted_in(topic, partition, start, end)

    def index_snapshot(self) -> TransactionIndex:
        """A copy of the index as it is now, for a reader that needs one instant (a query)."""
        with self._lock:
            return TransactionIndex(
                {tp: list(r) for tp, r in self.index.aborted.items()},
                {tp: {pid: list(r) for pid, r in by_pid.items()} for tp, by_pid in self.index.open.items()},
            )

    # admin ----------------------------------------------------------------------------------
    def describe(self, transactional_id: str) -> Transaction | None:
        with self._lock:
            return self._txns.get(transactional_id)

    def list_transactions(
        self, *, states: Sequence[str] = (), producer_ids: Sequence[int] = (), pattern: str | None = None,
        min_duration_ms: int = -1,
    ) -> list[Transaction]:  # fmt: skip
        now_ms = int(self._clock() * 1000)
        regex = re.compile(pattern) if pattern else None
        with self._lock:
            txns = list(self._txns.values())
        return [
            t
            for t in txns
            if (not states or t.state in states)
            and (not producer_ids or t.producer_id in producer_ids)
            and (regex is None or regex.fullmatch(t.transactional_id))
            and (min_duration_ms < 0 or (t.state == "Ongoing" and now_ms - t.started_ms >= min_duration_ms))
        ]

    def pending_offsets(self, group: str) -> frozenset[TP]:
        """Partitions with offsets of ``group`` in a transaction not yet complete (an
        OffsetFetch with ``require_stable`` answers UNSTABLE_OFFSET_COMMIT for them)."""
        with self._lock:
            return frozenset(tp for txn in self._txns.values() if unfinished(txn) for tp in txn.offsets.get(group, {}))

    def forget_topic(self, topic: str) -> None:
        """A deleted topic's index must not apply to a new topic of that name."""
        with self._lock:
            self.index.forget_topic(topic)
            for txn in self._txns.values():
                txn.partitions = {tp for tp in txn.partitions if tp[0] != topic}
            file = self._write({"k": "deleted", "t": topic})
        file.sync()

    # timeouts -------------------------------------------------------------------------------
    def abort_expired(self) -> list[str]:
        """Abort (and fence, as Kafka does) every transaction open longer than its timeout,
        and finish any whose completion failed half-way (a marker that could not be written)."""
        now_ms = int(self._clock() * 1000)
        with self._lock:
            due = [t for t in self._txns.values() if overdue(t, now_ms)]
        done = []
        for txn in due:
            if not txn.lock.acquire(blocking=False):
                continue  # being completed or changed right now: look again next time
            try:
                if txn.state.startswith("Prepare"):
                    log.warning("transaction %r: finishing its %s", txn.transactional_id, txn.state)
                    self._complete(txn, commit=txn.state == "PrepareCommit", bump=False)
                elif timed_out(txn, now_ms):
                    log.warning("transaction %r timed out after %d ms: aborting", txn.transactional_id, txn.timeout_ms)
                    self._complete(txn, commit=False, bump=True)
                else:
                    continue
                done.append(txn.transactional_id)
            finally:
                txn.lock.release()
        return done

    def start_timer(self, interval_s: float = 0.5) -> None:
        """Check for expired transactions every ``interval_s`` in a daemon thread."""
        if self._timer is None:
            self._timer = ExpiryTimer(self.abort_expired, interval_s)

    def acquire(self) -> TransactionCoordinator:
        """One more holder (see :func:`.transaction_registry.shared_coordinator`); each
        calls :meth:`close` once."""
        with self._lock:
            self._holders += 1
        return self

    def close(self) -> None:
        """Let go of the coordinator; the last holder stops its timer and closes its file."""
        with self._lock:
            self._holders -= 1
            if self._holders > 0:
                return
        self.shutdown()

    def shutdown(self) -> None:
        """Stop now, whoever still holds it (the broker is closing)."""
        self._on_shutdown(self)
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        with self._lock:
            self._state.close()
