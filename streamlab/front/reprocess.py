"""Reprocessing a streaming job over retained history: its group, its state, its output.

A Quix Streams application keeps three things that a re-run must agree on:

- its consumer group's committed offsets on the input topics (where it resumes);
- its state: RocksDB stores under ``<state_dir>/<group>/`` on local disk, backed by
  compacted changelog topics named ``changelog__<group>--<topic>--<store>`` from which a
  fresh instance restores the stores (and ``repartition__<group>--...`` topics for
  ``group_by``);
- its output topic.

Moving only the offsets back would restore the old windows from the changelog and add the
replayed records to them a second time. So :func:`reset_job` moves the offsets
(:meth:`Lab.reset_offsets`, previewed first) *and* deletes the group's changelog and
repartition topics and its local state directory: the re-run starts empty, as the first
run did. The output is versioned rather than cleared (the application reads its output
topic's name from its environment, ``revenue.v1`` then ``revenue.v2``), so both runs stay
readable and :meth:`Lab.diff_topics` can compare them.

Reprocessing from a time (``to="2026-01-07"``) starts the state empty at that point too:
choose a time on a window boundary, or windows straddling it are computed from half
their records.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from streamlab.errors import ConfigError
from streamlab.model.group_offsets import RESET_COLUMNS

if TYPE_CHECKING:
    from streamlab.front.lab import Lab

INTERNAL_PREFIXES = ("changelog__", "repartition__")  # Quix Streams' topics of a group's state


@dataclass(frozen=True)
class JobReset:
    """What resetting a job's group moves and deletes (``applied``: done, else a preview).

    ``offsets`` is :meth:`Lab.reset_offsets`' frame for the group's input topics,
    ``internal_topics`` the group's changelog and repartition topics, ``state_path`` the
    group's local state directory (None when there is none)."""

    group: str
    to: Any
    offsets: pd.DataFrame
    internal_topics: tuple[str, ...]
    state_path: Path | None
    applied: bool

    def __repr__(self) -> str:
        verb = ("moved", "deleted", "removed") if self.applied else ("would move", "would delete", "would remove")
        head = f"group {self.group!r} to {self.to!r}" + ("" if self.applied else " (dry run: nothing changed yet)")
        lines = [head]
        if self.offsets.empty:
            lines.append("  offsets: nothing committed yet")
        for topic, rows in self.offsets.groupby("topic", sort=True):
            again, skipped = int(rows["replayed"].sum()), int(rows["skipped"].sum())
            lines.append(f"  offsets: {verb[0]} {len(rows)} partition(s) of {topic}: "
                         f"{again:,} records to process again, {skipped:,} skipped")  # fmt: skip
        if self.internal_topics:
            lines.append(f"  state: {verb[1]} {len(self.internal_topics)} topic(s): {', '.join(self.internal_topics)}")
        if self.state_path is not None:
            lines.append(
                f"  state: {verb[2]} the local state directory {self.state_path.parent.name}/{self.state_path.name}"
            )
        return "\n".join(lines)


def internal_topics(lab: Lab, group: str) -> list[str]:
    """The group's Quix Streams changelog and repartition topics."""
    names = lab.topics()["name"].tolist()
    return sorted(n for n in names if any(n.startswith(f"{prefix}{group}--") for prefix in INTERNAL_PREFIXES))


def reset_job(lab: Lab, group: str, to: Any = "earliest", *, state_dir: str | Path | None, dry_run: bool) -> JobReset:
    """Preview, or with ``dry_run=False`` apply, a re-run's reset of ``group``: its offsets
    on its input topics to ``to`` (what :meth:`Lab.reset_offsets` accepts), its changelog
    and repartition topics deleted, ``<state_dir>/<group>`` removed. The offsets move first:
    a group with live members is refused (GroupNotEmptyError) before anything is deleted."""
    if not isinstance(group, str) or not group:
        raise ConfigError(f"group must be a non-empty string, got {group!r}")
    internal = internal_topics(lab, group)
    committed = lab.backend.lag(group)
    inputs = sorted(set(committed["topic"]) - set(internal))
    if inputs:
        offsets = lab.reset_offsets(group, to, dry_run=dry_run, topics=inputs)
    else:  # never committed (or only to its internal topics): nothing to move
        offsets = pd.DataFrame(columns=RESET_COLUMNS)
    path = Path(state_dir).absolute() / group if state_dir is not None else None
    found = path if path is not None and path.exists() else None
    if not dry_run:
        for topic in internal:
            lab.delete_topic(topic)
        if found is not None:
            shutil.rmtree(found)
    return JobReset(group=group, to=to, offsets=offsets, internal_topics=tuple(internal), state_path=found,
                    applied=not dry_run)  # fmt: skip
