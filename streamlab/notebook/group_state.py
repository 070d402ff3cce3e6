"""What the consumer-group views show: :class:`LagState` (offsets and lag per partition)
and :class:`RebalanceTimelineState` (members now, generations over time).

The timeline can run members of the group in the notebook through a
:class:`~streamlab.notebook.consumer_pool.ConsumerPool`, which has its own module.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from streamlab.errors import StreamlabError, UnknownGroupWarning
from streamlab.front.lab import Lab
from streamlab.model.types import TopicPartition
from streamlab.notebook.consumer_pool import ConsumerPool
from streamlab.notebook.state_helpers import (
    format_time_lag,
    group_snapshot,
    label_text,
    maybe_int,
    member_label,
    num,
    partitions_text,
    records_of,
)

__all__ = ["Generation", "LagState", "PartitionLag", "RebalanceTimelineState", "generations_from"]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    log_start: int
    committed: int | None  # None: the group has committed nothing here
    end: int
    lag: int
    time_lag: timedelta | None


class LagState:
    """Per partition: log start, the group's committed offset, the end offset and the lag
    in records and in time. Every refresh also appends a sample to :attr:`samples`."""

    def __init__(self, lab: Lab, topic: str, group: str, *, history: int = 600) -> None:
        self.lab, self.topic, self.group = lab, topic, group
        self.rows: list[PartitionLag] = []
        self.samples: deque[tuple[datetime, dict[int, int]]] = deque(maxlen=history)

    @property
    def total_lag(self) -> int:
        return sum(r.lag for r in self.rows)

    def refresh(self) -> None:
        offsets = self.lab.offsets(self.topic)
        with warnings.catch_warnings():  # a group nobody joined yet is what the view shows, not a typo
            warnings.simplefilter("ignore", UnknownGroupWarning)
            lagging = self.lab.lag(self.group)
        lag = {int(r["partition"]): r for r in records_of(lagging) if r["topic"] == self.topic}
        rows = []
        for r in records_of(offsets):
            p, start, end = int(r["partition"]), int(r["log_start_offset"]), int(r["high_watermark"])
            if p in lag:
                row = lag[p]
                time_lag = pd.Timedelta(row["time_lag"]).to_pytimedelta()
                # the end the lag was computed from (read after the offsets above), so that
                # committed + lag = end in every row drawn
                end = max(end, int(row.get("end_offset", end)))
                rows.append(PartitionLag(p, start, int(row["committed"]), end, int(row["lag"]), time_lag))
            else:
                rows.append(PartitionLag(p, start, None, end, end - start, None))
        self.rows = rows
        self.samples.append((datetime.now(UTC), {r.partition: r.lag for r in rows}))

    def summary(self) -> str:
        lines = [f"group {self.group} on topic {self.topic}: lag {num(self.total_lag)} records in total"]
        for r in self.rows:
            committed = "-" if r.committed is None else num(r.committed)
            behind = "nothing committed" if r.time_lag is None else f"{format_time_lag(r.time_lag)} behind"
            lines.append(f"  partition {r.partition}: log start {num(r.log_start)}, committed {committed}, "
                         f"end {num(r.end)}, lag {num(r.lag)} records ({behind})")  # fmt: skip
        return "\n".join(lines)


# rebalance timeline -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Generation:
    """One generation of a group: why it started and who owned what once it did."""

    generation: int
    time: pd.Timestamp
    reason: str
    owners: dict[TopicPartition, str]  # partition -> member label, after this generation
    assigned: tuple[tuple[str, TopicPartition], ...]
    revoked: tuple[tuple[str, TopicPartition], ...]

    def by_member(self) -> dict[str, list[TopicPartition]]:
        out: dict[str, list[TopicPartition]] = {}
        for tp, member in sorted(self.owners.items()):
            out.setdefault(member, []).append(tp)
        return dict(sorted(out.items()))


def generations_from(history: pd.DataFrame) -> list[Generation]:
    """Fold ``lab.rebalances(group)`` (one row per ownership change) into generations."""
    owners: dict[TopicPartition, str] = {}
    out: list[Generation] = []
    for generation, rows in history.groupby("generation", sort=True):
        assigned, revoked = [], []
        for r in records_of(rows):
            tp, member = TopicPartition(str(r["topic"]), int(r["partition"])), member_label(str(r["member"]))
            if r["change"] == "revoked":
                revoked.append((member, tp))
                if owners.get(tp) == member:
                    del owners[tp]
            else:
                owners[tp] = member
                if r["change"] == "assigned":
                    assigned.append((member, tp))
        first = records_of(rows.head(1))[0]
        out.append(Generation(int(str(generation)), pd.Timestamp(first["time"]), label_text(str(first["reason"])),
                              dict(owners), tuple(assigned), tuple(revoked)))  # fmt: skip
    return out


class RebalanceTimelineState:
    """A group's members now, and its generations over time (embedded broker only).

    With ``topic`` set, :meth:`add_consumer`, :meth:`stop_consumer` and
    :meth:`crash_consumer` run members of the group inside this process (a
    :class:`ConsumerPool`), so a notebook can cause rebalances and watch them.
    """

    def __init__(self, lab: Lab, group: str, topic: str | None = None, **consumer_config: Any) -> None:
        self.lab, self.group, self.topic = lab, group, topic
        self.consumer_config = consumer_config
        self.state, self.assignor, self.member_count = "Empty", "", 0
        self.generation: int | None = 0  # None: the Lab does not report it (DescribeGroups has none)
        self.generation_name = "generation"  # "group epoch" for a consumer-protocol (KIP-848) group
        self.members: dict[str, list[TopicPartition]] = {}
        self.generations: list[Generation] = []
        self.history_error: str | None = None
        self.group_error: str | None = None
        self.selected: int | None = None  # index into generations; None follows the newest
        self.pool: ConsumerPool | None = None

    def refresh(self) -> None:
        try:
            row, described = group_snapshot(self.lab, self.group)
            self.group_error = None
        except StreamlabError as exc:  # e.g. librdkafka's mock cluster has no ListGroups/DescribeGroups
            row, described = None, self.pool.assignments() if self.pool is not None else []
            self.group_error = f"group state unavailable from this Lab ({exc}); showing this notebook's members"
        if row is not None:
            self.state, self.generation = str(row["state"]), maybe_int(row["generation"])
            self.generation_name = "group epoch" if row.get("type") == "consumer" else "generation"
            self.assignor, self.member_count = str(row["assignor"]), int(row["members"])
        elif self.group_error:
            self.state, self.generation, self.assignor = "unknown", None, ""
            self.member_count = len({r["member"] for r in described})
        else:
            self.state, self.generation, self.assignor, self.member_count = "Empty", 0, "", 0
        members: dict[str, list[TopicPartition]] = {}
        for r in described:
            tp = TopicPartition(str(r["topic"]), int(r["partition"]))
            members.setdefault(member_label(str(r["member"])), []).append(tp)
        self.members = {m: sorted(tps) for m, tps in sorted(members.items())}
        history = getattr(self.lab, "rebalances", None)
        if history is None:
            self.history_error = ("rebalance history is recorded by the embedded broker only; "
                                  "this Lab shows the current members and assignment")  # fmt: skip
            return
        try:
            self.generations = generations_from(history(self.group))
            self.history_error = None
        except (NotImplementedError, StreamlabError) as exc:
            self.history_error = f"no rebalance history from this Lab: {exc}"

    def select(self, index: int | None) -> Generation | None:
        """Step to ``generations[index]`` (None: always the newest)."""
        self.selected = index
        return self.current

    @property
    def current(self) -> Generation | None:
        if not self.generations:
            return None
        if self.selected is None:
            return self.generations[-1]
        return self.generations[max(0, min(self.selected, len(self.generations) - 1))]

    # members inside the notebook ------------------------------------------------------------
    def _pool(self) -> ConsumerPool:
        if self.topic is None:
            raise StreamlabError("give the timeline a topic to run consumers of the group in the notebook")
        if self.pool is None:
            self.pool = ConsumerPool(self.lab, self.topic, self.group, **self.consumer_config)
        return self.pool

    def add_consumer(self, client_id: str | None = None) -> str:
        return self._pool().add(client_id)

    def stop_consumer(self, client_id: str | None = None) -> str | None:
        return self._pool().stop(client_id)

    def crash_consumer(self, client_id: str | None = None) -> str | None:
        return self._pool().crash(client_id)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def summary(self) -> str:
        generation = "?" if self.generation is None else self.generation
        lines = [f"group {self.group}: {self.state}, generation {generation}, "
                 f"assignor {self.assignor or '-'}, {self.member_count} member(s)"]  # fmt: skip
        lines += [f"  {m}: {partitions_text(tps)}" for m, tps in self.members.items()]
        if self.group_error:
            lines.append(f"note: {self.group_error}")
        if self.history_error:
            lines.append(f"history: {self.history_error}")
            return "\n".join(lines)
        lines.append(f"history: {len(self.generations)} generation(s)")
        for g in self.generations:
            owners = "; ".join(f"{m}: {', '.join(str(tp.partition) for tp in tps)}" for m, tps in g.by_member().items())
            mark = "*" if g is self.current and self.selected is not None else " "
            lines.append(f" {mark}generation {g.generation}: {g.reason} -> {owners or 'no owners'} "
                         f"({len(g.revoked)} revoked, {len(g.assigned)} assigned)")  # fmt: skip
        return "\n".join(lines)
