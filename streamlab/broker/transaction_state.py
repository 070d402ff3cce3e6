"""The transaction state file and the index readers use, without the coordinator: the
file's lines, read back (:func:`replay_state`) and written (:class:`StateFile`, compacted
to :func:`state_docs`).

Every change the coordinator makes is a checksummed line in ``<data>/server/transactions.log``
(:func:`~streamlab.storage.state_lines.encode_line`); replaying the file (:func:`replay_state`) gives each transactional
id's :class:`Transaction` and the :class:`TransactionIndex`: per partition, the offset
ranges of aborted transactional batches and of batches of transactions still open, whose
first offsets bound the last stable offset.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from streamlab.errors import ClosedError
from streamlab.storage.append_file import AppendFile
from streamlab.storage.state_lines import encode_line, parse_lines, replace_durably

FILE_NAME: Final = "transactions.log"

TxnState = Literal["Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort"]
STATES: Final[tuple[str, ...]] = TxnState.__args__  # type: ignore[attr-defined]
TP = tuple[str, int]
Range = tuple[int, int]  # [start, end) offsets


@dataclass(slots=True)
class Transaction:
    """One transactional id's producer and its current (or last) transaction."""

    transactional_id: str
    producer_id: int
    epoch: int
    timeout_ms: int
    state: TxnState = "Empty"
    started_ms: int = -1
    partitions: set[TP] = field(default_factory=set)
    marked: set[TP] = field(default_factory=set)  # partitions whose marker is written
    groups: set[str] = field(default_factory=set)
    offsets: dict[str, dict[TP, tuple[int, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one operation at a time


@dataclass(slots=True)
class TransactionIndex:
    """Per partition: offset ranges of aborted transactional batches, and of batches of
    transactions still open (their first offset bounds the last stable offset)."""

    aborted: dict[TP, list[Range]] = field(default_factory=dict)
    open: dict[TP, dict[int, list[Range]]] = field(default_factory=dict)  # tp -> producer id -> ranges

    def last_stable_offset(self, topic: str, partition: int, high_watermark: int) -> int:
        firsts = [ranges[0][0] for ranges in self.open.get((topic, partition), {}).values() if ranges]
        return min([high_watermark, *firsts])

    def aborted_in(self, topic: str, partition: int, start: int, end: int) -> list[Range]:
        """The aborted ranges of the partition that overlap [start, end)."""
        ranges = self.aborted.get((topic, partition))
        if not ranges:
            return []
        i = max(bisect.bisect_right(ranges, (start, 2**63)) - 1, 0)
        j = bisect.bisect_left(ranges, (end, -1))
        return [r for r in ranges[i:j] if r[1] > start]

    def add_open(self, tp: TP, pid: int, rng: Range) -> None:
        self.open.setdefault(tp, {}).setdefault(pid, []).append(rng)

    def drop_open(self, tp: TP, pid: int, rng: Range) -> None:
        ranges = self.open.get(tp, {}).get(pid)
        if ranges and rng in ranges:
            ranges.remove(rng)

    def resolve(self, tp: TP, pid: int, *, aborted: bool) -> None:
        """The marker of ``pid``'s transaction is written to ``tp``: its batches are decided."""
        by_pid = self.open.get(tp)
        ranges = by_pid.pop(pid, []) if by_pid else []
        if by_pid is not None and not by_pid:
            del self.open[tp]
        if aborted:
            kept = self.aborted.setdefault(tp, [])
            for rng in ranges:
                bisect.insort(kept, rng)

    def forget_topic(self, topic: str) -> None:
        self.aborted = {tp: r for tp, r in self.aborted.items() if tp[0] != topic}
        self.open = {tp: r for tp, r in self.open.items() if tp[0] != topic}


def read_index(data_dir: str | Path) -> TransactionIndex:
    """The transaction index as last written by a server on ``data_dir`` (empty if none).

    A snapshot for readers outside the server: batches of transactions still open count as
    open (above the last stable offset), not as aborted.
    """
    try:
        data = (Path(data_dir) / "server" / FILE_NAME).read_bytes()
    except FileNotFoundError:
        return TransactionIndex()
    return replay_state(data)[1]


def replay_state(data: bytes) -> tuple[dict[str, Transaction], TransactionIndex]:
    txns: dict[str, Transaction] = {}
    index = TransactionIndex()
    for doc in parse_lines(data):
        kind = doc.get("k")
        txn = txns.get(doc.get("id", ""))
        if kind == "init":
            txns[doc["id"]] = Transaction(doc["id"], doc["pid"], doc["e"], doc["to"])
        elif kind == "a":
            bisect.insort(index.aborted.setdefault((doc["t"], doc["p"]), []), (doc["o"], doc["o"] + doc["n"]))
        elif kind == "b":
            index.add_open((doc["t"], doc["p"]), doc["pid"], (doc["o"], doc["o"] + doc["n"]))
        elif kind == "x":
            index.drop_open((doc["t"], doc["p"]), doc["pid"], (doc["o"], doc["o"] + doc["n"]))
        elif kind == "m":
            index.resolve((doc["t"], doc["p"]), doc["pid"], aborted=not doc["c"])
            if txn is not None:
                txn.marked.add((doc["t"], doc["p"]))
        elif kind == "deleted":
            index.forget_topic(doc["t"])
        elif txn is None:
            continue
        elif kind == "add":
            txn.partitions.add((doc["t"], doc["p"]))
            if txn.state != "Ongoing":
                txn.state, txn.started_ms = "Ongoing", doc["ts"]
        elif kind == "grp":
            txn.groups.add(doc["g"])
            if txn.state != "Ongoing":
                txn.state, txn.started_ms = "Ongoing", doc["ts"]
        elif kind == "off":
            txn.offsets.setdefault(doc["g"], {})[(doc["t"], doc["p"])] = (doc["o"], doc["m"])
        elif kind == "end":
            txn.state = "PrepareCommit" if doc["c"] else "PrepareAbort"
        elif kind == "done":
            txn.state = "CompleteCommit" if doc["c"] else "CompleteAbort"
            clear(txn)
    return txns, index


def clear(txn: Transaction) -> None:
    txn.partitions, txn.marked, txn.groups, txn.offsets = set(), set(), set(), {}


def unfinished(txn: Transaction) -> bool:
    """Whether ``txn`` is ongoing or completing (neither Empty nor Complete*)."""
    return txn.state != "Empty" and not txn.state.startswith("Complete")


def init_line(txn: Transaction) -> dict[str, Any]:
    """The line that gives ``txn``'s transactional id its producer id, epoch and timeout."""
    return {"k": "init", "id": txn.transactional_id, "pid": txn.producer_id, "e": txn.epoch, "to": txn.timeout_ms}


# Writing the file ------------------------------------------------------------------------------
def drop_unstored(index: TransactionIndex, high_watermark: Callable[[TP], int]) -> None:
    """Forget batch lines whose data never reached the log (a crash between line and
    append); ``high_watermark`` is -1 for a partition that no longer exists."""
    for tp, by_pid in list(index.open.items()):
        hwm = high_watermark(tp)
        for pid, ranges in list(by_pid.items()):
            by_pid[pid] = [r for r in ranges if r[1] <= hwm]
            if not by_pid[pid]:
                del by_pid[pid]
        if not by_pid:
            del index.open[tp]


def state_docs(
    txns: Mapping[str, Transaction], index: TransactionIndex, log_start: Callable[[TP], int | None]
) -> list[dict[str, Any]]:
    """The shortest lines that :func:`replay_state` reads back as ``txns`` and ``index``
    (aborted ranges wholly below a partition's log start, or of a deleted one, left out)."""
    docs: list[dict[str, Any]] = []
    for tp, ranges in index.aborted.items():
        start = log_start(tp)
        if start is None:
            continue
        docs.extend({"k": "a", "t": tp[0], "p": tp[1], "o": o, "n": e - o} for o, e in ranges if e > start)
    for txn in txns.values():
        docs.append(init_line(txn))
        if not unfinished(txn):
            continue
        tid = txn.transactional_id
        docs.extend({"k": "add", "id": tid, "t": t, "p": p, "ts": txn.started_ms} for t, p in txn.partitions)
        docs.extend({"k": "grp", "id": tid, "g": g, "ts": txn.started_ms} for g in txn.groups)
        docs.extend(
            {"k": "off", "id": tid, "g": g, "t": t, "p": p, "o": o, "m": m}
            for g, offsets in txn.offsets.items()
            for (t, p), (o, m) in offsets.items()
        )
        if txn.state.startswith("Prepare"):
            docs.append({"k": "end", "id": tid, "c": txn.state == "PrepareCommit"})
    for tp, by_pid in index.open.items():
        docs.extend(
            {"k": "b", "pid": pid, "t": tp[0], "p": tp[1], "o": o, "n": e - o}
            for pid, ranges in by_pid.items()
            for o, e in ranges
        )
    # markers already written for a transaction still completing
    for txn in txns.values():
        if txn.state.startswith("Prepare"):
            docs.extend({"k": "m", "id": txn.transactional_id, "pid": txn.producer_id, "t": t, "p": p,
                         "c": txn.state == "PrepareCommit"} for t, p in txn.marked)  # fmt: skip
    return docs


class StateFile:
    """The state file as its writer holds it: appended to line by line, rewritten whole
    (under a new name, then renamed) when it is compacted. The caller locks."""

    def __init__(self, path: Path, *, owner: str) -> None:
        self.path = path
        self._owner = owner  # named when it is written to after close
        self._file: AppendFile | None = None
        self.lines = 0

    def rewrite(self, docs: list[dict[str, Any]]) -> None:
        lines = [encode_line(doc) for doc in docs]
        replace_durably(self.path, b"".join(lines))
        if self._file is not None:
            self._file.close(durable_elsewhere=True)
        self._file = AppendFile(self.path, flags=os.O_WRONLY)
        self.lines = len(lines)

    def append(self, *docs: dict[str, Any]) -> AppendFile:
        """Append lines; the caller syncs the returned file if needed."""
        if self._file is None:
            raise ClosedError(f"{self._owner} is closed")
        self._file.append(b"".join(encode_line(doc) for doc in docs))
        self.lines += len(docs)
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
