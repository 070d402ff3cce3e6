"""The transaction state file and the index readers use, without the coordinator.

Every change the coordinator makes is a checksummed line in ``<data>/server/transactions.log``
(:func:`~streamlab.storage.state_lines.encode_line`); replaying the file (:func:`replay_state`) gives each transactional
id's :class:`Transaction` and the :class:`TransactionIndex`: per partition, the offset
ranges of aborted transactional batches and of batches of transactions still open, whose
first offsets bound the last stable offset.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from streamlab.storage.state_lines import parse_lines

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
