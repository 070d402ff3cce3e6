"""What every notebook state module shares: member labels and their colours, and small
readers and formatters of a Lab's tables. The state modules read from the one
:class:`streamlab.front.lab.Lab` front, whatever its backend.

Kept apart so that the state modules (topics, groups, producer) depend on it and not on
one another.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from streamlab.model.types import TopicPartition

if TYPE_CHECKING:
    from streamlab.front.lab import Lab

__all__ = ["PALETTE", "colors_for", "format_time_lag", "member_label"]


# helpers ----------------------------------------------------------------------------------
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_MEMBER_ID = re.compile(rf"([\w.\-]+?)-(?:{_UUID}|\d+-[0-9a-f]{{8}})(?![\w\-])")


def member_label(member_id: str) -> str:
    """A member's client id. Member ids are ``<client_id>-<uuid>`` (as Kafka makes them) and
    the random tail would make every printed history different."""
    match = _MEMBER_ID.fullmatch(member_id)
    return match.group(1) if match else member_id


def label_text(text: str) -> str:
    return _MEMBER_ID.sub(lambda m: m.group(1), text)


# matplotlib's tab10: the same member has the same colour in widgets and plots
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def colors_for(labels: Sequence[str]) -> dict[str, str]:
    """A colour per member label, stable for a given set of labels (sorted order)."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(set(labels)))}


def records_of(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame's rows as plain dicts (what the states read from the Lab's tables)."""
    return [{str(k): v for k, v in row.items()} for row in df.to_dict("records")]


def maybe_int(value: Any) -> int | None:
    """An int, or None for the NaN/NA a Lab uses for what it cannot tell."""
    return None if value is None or pd.isna(value) else int(value)


def num(value: int) -> str:
    return f"{value:,}"


def format_time_lag(lag: timedelta | None) -> str:
    """A time lag as a person reads it: ``"0 s"``, ``"1.2 s"``, ``"3m 12s"``, ``"4h 05m"``,
    ``"2d 23h 54m"`` (None, where nothing is committed: ``"-"``). Precision shrinks as the
    lag grows: a lag of days is not read to the millisecond."""
    if lag is None:
        return "-"
    seconds = lag.total_seconds()
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 60:
        text = "0 s" if seconds < 0.05 else f"{seconds:.1f} s".replace(".0 s", " s")
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    else:
        days, rest = divmod(int(seconds), 86400)
        text = f"{days}d {rest // 3600}h {rest % 3600 // 60}m"
    return sign + text


def short(value: Any, width: int = 60) -> str:
    if isinstance(value, bytes):  # UTF-8 where it is, escapes for the rest and for control bytes
        text = "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}"
                       for c in value.decode("utf-8", errors="backslashreplace"))  # fmt: skip
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def stamp(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def group_snapshot(lab: Lab, group: str, tries: int = 5) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The group's row of ``lab.groups()`` and its ``describe_group`` rows, read so they
    agree: two calls are not one snapshot, so the group row is read before and after the
    members, and again while it changed in between (a rebalance always moves the state or
    the generation)."""

    def row() -> dict[str, Any] | None:
        found = [r for r in records_of(lab.groups()) if r["group"] == group]
        return found[0] if found else None

    before = row()
    for _ in range(tries):
        described = records_of(lab.describe_group(group))
        after = row()
        if before == after:
            break
        before = after
    return after, described


def partitions_text(tps: Sequence[TopicPartition]) -> str:
    return ", ".join(str(tp) for tp in tps) or "nothing"
