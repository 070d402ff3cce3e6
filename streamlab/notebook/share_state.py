"""What the share-group views show (KIP-932 share groups, "queues for Kafka"), as plain
Python objects: the widgets in :mod:`streamlab.notebook.share_widgets` and
:func:`streamlab.notebook.plot.share_states` only draw a :class:`ShareGroupState`.

Per share-partition: its start offset (SPSO), end offset (SPEO), the log's range, counts
by state and one :class:`InFlight` per record between SPSO and SPEO (capped at
``max_records`` per partition; the counts always cover the whole window). Per member:
how many records it holds.

The embedded broker keeps this state; a ``kafka://`` Lab has no way to show it, so
building a :class:`ShareGroupState` on one raises :class:`ShareViewUnavailableError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from streamlab.errors import ConfigError, UnsupportedOperationError
from streamlab.front.lab import Lab
from streamlab.groups.share import RecordState, now_ms

__all__ = [
    "STATES",
    "STATE_COLORS",
    "InFlight",
    "ShareGroupState",
    "ShareMemberInfo",
    "SharePartitionInfo",
    "ShareViewUnavailableError",
]

STATES: tuple[str, ...] = tuple(str(s) for s in RecordState)
# Green and orange match "consumed" and "lag" in the classic group's OffsetsLag view beside it.
STATE_COLORS = {"available": "#4e79a7", "acquired": "#f28e2b", "acknowledged": "#4c9f70", "archived": "#7f7f7f"}
NOT_YET_DELIVERED_COLOR = "#e6e6e6"
SUMMARY_RECORDS = 20  # per partition in summary(): a notebook's saved output stays short

_MEMBER_TAIL = re.compile(r"-[0-9a-f]{8}$")  # share member ids are <client_id>-<8 hex digits>


class ShareViewUnavailableError(UnsupportedOperationError):
    """The Lab keeps no share-group state to show (a ``kafka://`` Lab): the share-group
    views need the embedded broker."""


@dataclass(frozen=True, slots=True)
class InFlight:
    """One record between SPSO and SPEO. ``owner`` is the holder's label while acquired;
    ``lock_remaining`` is how long its lock had left at the last refresh."""

    offset: int
    state: str
    delivery_count: int
    owner: str | None = None
    lock_remaining: timedelta | None = None


@dataclass(frozen=True, slots=True)
class SharePartitionInfo:
    topic: str
    partition: int
    start_offset: int  # SPSO: every record below it is done
    end_offset: int  # SPEO: every record below it was handed out at least once
    log_start: int
    high_watermark: int
    counts: dict[str, int]  # state -> records in the window
    records: tuple[InFlight, ...]  # the lowest ``max_records`` of the window
    hidden: int = 0  # window records past the cap

    @property
    def not_yet_delivered(self) -> int:
        return max(self.high_watermark - self.end_offset, 0)

    @property
    def name(self) -> str:
        return f"{self.topic}[{self.partition}]"


@dataclass(frozen=True, slots=True)
class ShareMemberInfo:
    label: str  # the client id, with "#2", "#3" for later members sharing one
    member_id: str
    held: int


class ShareGroupState:
    """A share group's in-flight records and members, read from the embedded broker by
    :meth:`refresh`; ``topic`` narrows it to one of the group's topics."""

    def __init__(self, lab: Lab, group: str, *, topic: str | None = None, max_records: int = 200) -> None:
        try:
            lab.backend.share_group_snapshot(group)
        except UnsupportedOperationError:
            raise ShareViewUnavailableError(
                f"the share-group views need the embedded broker (streamlab.connect(<directory>)): {lab!r} "
                "keeps no share-group state these views can read"
            ) from None
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise ConfigError(f"max_records must be a positive integer, got {max_records!r}")
        self.lab, self.group, self.topic, self.max_records = lab, group, topic, max_records
        self.exists = False
        self.delivery_count_limit: int | None = None
        self.dead_letter_topic: str | None = None
        self.partitions: list[SharePartitionInfo] = []
        self.members: list[ShareMemberInfo] = []

    def refresh(self) -> None:
        snapshot = self.lab.backend.share_group_snapshot(self.group)
        if snapshot is None:  # no share consumer has joined it yet: a live view waits for one
            self.exists, self.delivery_count_limit, self.dead_letter_topic = False, None, None
            self.partitions, self.members = [], []
            return
        parts, records, members = snapshot.partitions, snapshot.records, snapshot.members
        now = now_ms()
        self.exists = True
        self.delivery_count_limit, self.dead_letter_topic = snapshot.delivery_count_limit, snapshot.dead_letter_topic
        labels = _labels(members)
        self.members = [ShareMemberInfo(labels[m["member"]], m["member"], int(m["held"])) for m in members]
        by_tp: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in records:
            by_tp.setdefault((r["topic"], r["partition"]), []).append(r)
        self.partitions = []
        for p in parts:
            if self.topic is not None and p["topic"] != self.topic:
                continue
            window = by_tp.get((p["topic"], p["partition"]), [])
            shown = tuple(_in_flight(r, labels, now) for r in window[: self.max_records])
            self.partitions.append(SharePartitionInfo(
                p["topic"], p["partition"], p["start_offset"], p["end_offset"], p["log_start_offset"],
                p["high_watermark"], {s: int(p[s]) for s in STATES}, shown, max(len(window) - self.max_records, 0),
            ))  # fmt: skip

    @property
    def counts(self) -> dict[str, int]:
        """Records per state over every partition shown."""
        return {s: sum(p.counts[s] for p in self.partitions) for s in STATES}

    def summary(self) -> str:
        if not self.exists:
            return f"share group {self.group}: no share consumer has joined it yet"
        dlq = self.dead_letter_topic or "-"
        lines = [f"share group {self.group}: {len(self.members)} member(s), delivery limit "
                 f"{self.delivery_count_limit}, dead-letter topic {dlq}",
                 "  in flight: " + ", ".join(f"{num(n)} {s}" for s, n in self.counts.items())]  # fmt: skip
        for p in self.partitions:
            lines.append(f"  {p.name}: start {num(p.start_offset)}, end {num(p.end_offset)}, log end "
                         f"{num(p.high_watermark)} ({num(p.not_yet_delivered)} not yet delivered)")  # fmt: skip
            cells = [f"{r.offset} {r.state}{f' by {r.owner}' if r.owner else ''} {r.delivery_count}x"
                     for r in p.records[:SUMMARY_RECORDS]]  # fmt: skip
            more = len(p.records) - len(cells) + p.hidden
            if cells:
                lines.append("    " + ", ".join(cells) + (f", ... {num(more)} more" if more else ""))
        lines += [f"  member {m.label}: holds {num(m.held)}" for m in self.members]
        return "\n".join(lines)


def num(value: int) -> str:
    return f"{value:,}"


def _labels(members: list[dict[str, Any]]) -> dict[str, str]:
    """Member id -> client id; member ids end in random digits, which would make every
    printed summary different. Members sharing a client id get "#2", "#3" in join order."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for m in members:
        client = str(m["client_id"])
        seen[client] = seen.get(client, 0) + 1
        out[m["member"]] = client if seen[client] == 1 else f"{client}#{seen[client]}"
    return out


def _in_flight(row: dict[str, Any], labels: dict[str, str], now: int) -> InFlight:
    owner = row["owner"]
    label = None if owner is None else labels.get(owner, _MEMBER_TAIL.sub("", owner))
    expires = row["lock_expires_ms"]
    remaining = None if expires is None else timedelta(milliseconds=max(expires - now, 0))
    return InFlight(row["offset"], row["state"], row["delivery_count"], label, remaining)
