"""``streamlab sql``, ``groups``, ``describe-group``, ``lag`` and ``reset-offsets``: the
analysis and group-administration half of the API, as commands that print tables."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pandas as pd

from streamlab.front.lab import Lab


def _print(df: pd.DataFrame, empty: str) -> None:
    if df.empty:
        print(empty)
        return
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        print(df.to_string(index=False))


def sql(lab: Lab, args: argparse.Namespace) -> int:
    statement = args.query if args.query != "-" else sys.stdin.read()
    df = lab.sql(statement)
    if args.out:
        from streamlab.cli.main import write_table  # the replay command's writer

        write_table(df, args.out)
        return 0
    _print(df, "no rows")
    return 0


def groups(lab: Lab, args: argparse.Namespace) -> int:
    _print(lab.groups(), "no groups")
    return 0


def describe_group(lab: Lab, args: argparse.Namespace) -> int:
    _known_group(lab, args.group)
    _print(lab.describe_group(args.group), f"group {args.group!r} has no active members")
    return 0


def lag(lab: Lab, args: argparse.Namespace) -> int:
    _known_group(lab, args.group)
    df = lab.lag(args.group)
    _print(df, f"group {args.group!r} has committed no offsets")
    if not df.empty:
        print(f"total lag: {int(df['lag'].sum())} record(s)")
    return 0


def _known_group(lab: Lab, group: str) -> None:
    from streamlab.cli.main import CliError

    if group not in set(lab.groups()["group"]):
        raise CliError(f"no group {group!r}; `streamlab groups` lists the groups")


def _target(text: str) -> Any:
    """earliest, latest, an offset (int) or an ISO time, as reset_offsets takes them."""
    if text in ("earliest", "latest"):
        return text
    if text.lstrip("-").isdigit():
        return int(text)
    return text


def reset_offsets(lab: Lab, args: argparse.Namespace) -> int:
    _known_group(lab, args.group)
    to = _target(args.to)
    topics = args.topic or None
    if isinstance(to, int):
        from streamlab.model.types import TopicPartition

        current = lab.lag(args.group)
        if topics:
            current = current[current["topic"].isin(topics)]
        to = {TopicPartition(t, int(p)): to for t, p in zip(current["topic"], current["partition"], strict=True)}
    df = lab.reset_offsets(args.group, to, dry_run=not args.execute, topics=topics)
    _print(df, "nothing to reset")
    if args.execute:
        print(f"reset {len(df)} partition(s) of group {args.group!r}")
    else:
        print("dry run: nothing changed; add --execute to apply (the group must have no active members)")
    return 0


def add_commands(command: Any, commands: Any, with_lab: Any) -> None:
    """Register the commands on the parser (``command`` is main.py's helper)."""
    q = command(commands, "sql", "run a SQL query; every topic is a table", with_lab(sql, read_only=True))
    q.add_argument("query", help="the query ('-' reads it from stdin)")
    q.add_argument("--out", metavar="FILE", help="write the result to a .parquet or .csv file")
    command(commands, "groups", "list consumer and share groups", with_lab(groups, read_only=True))
    command(commands, "describe-group", "members and their partitions", with_lab(describe_group, read_only=True),
            "group")  # fmt: skip
    command(commands, "lag", "committed offset, end offset and lag per partition", with_lab(lag, read_only=True),
            "group")  # fmt: skip
    reset = command(commands, "reset-offsets", "move a group's committed offsets (a dry run unless --execute)",
                    with_lab(reset_offsets), "group")  # fmt: skip
    reset.add_argument("--to", required=True, metavar="X", help="earliest, latest, an offset or an ISO time")
    reset.add_argument("--topic", action="append", metavar="T", help="only this topic (repeatable)")
    reset.add_argument("--execute", action="store_true", help="apply the change (default: preview it)")
