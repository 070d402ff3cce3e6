"""``streamlab browse TOPIC``: a filtered page of a topic's records as a table (``lab.browse``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pandas as pd

from streamlab.cli.arguments import offset_or_time, partition_list
from streamlab.front.browse import TRANSACTION_COLUMNS
from streamlab.front.lab import Lab


def _start(text: str) -> int | str:
    """An offset, ``-N`` for the last N offsets of each partition, or a time."""
    body = text.removeprefix("-")
    return int(text) if body.isascii() and body.isdigit() else text


def _after(text: str) -> tuple[int, int]:
    partition, found, offset = text.partition(":")
    if not (found and partition.isdigit() and offset.isdigit()):
        raise argparse.ArgumentTypeError(f"expected PARTITION:OFFSET, e.g. 0:99, got {text!r}")
    return int(partition), int(offset)


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=_cell)
    return value


def shown(page: pd.DataFrame) -> pd.DataFrame:
    """What a terminal shows: the stored value only when no fields were spread from it,
    headers only when some record has them, bytes as text with escapes."""
    out = page.copy()
    meta = {"partition", "offset", "timestamp", "key", "value", "headers", "value_error", *TRANSACTION_COLUMNS}
    if "value" in out.columns and set(out.columns) - meta:
        out = out.drop(columns="value")
    if "headers" in out.columns and not any(out["headers"]):
        out = out.drop(columns="headers")
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = [_cell(v) for v in out[column]]
    return out


def browse(lab: Lab, args: argparse.Namespace) -> int:
    page = lab.browse(args.topic, where=args.where, search=args.search, start=args.start, end=args.end,
                      partitions=args.partitions, limit=args.limit, after=args.after,
                      transactions=args.transactions)  # fmt: skip
    if page.empty:
        print("no matching records")
        return 0
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                           "display.max_colwidth", 80):  # fmt: skip
        print(shown(page).to_string(index=False))
    last = f"{int(page['partition'].iloc[-1])}:{int(page['offset'].iloc[-1])}"
    more = f"; next page: --after {last}" if len(page) == args.limit else ""
    print(f"{len(page)} record(s){more}")
    return 0


def add_command(command: Any, commands: Any, with_lab: Any) -> None:
    """Register ``browse`` on the parser (``command`` is main.py's helper)."""
    text = "show a page of a topic's records, filtered by a SQL expression or a text"
    sub = command(commands, "browse", text, with_lab(browse, read_only=True), "topic")
    sub.add_argument("--where", metavar="EXPR", help='a DuckDB expression over the fields, e.g. "amount > 10"')
    sub.add_argument("--search", metavar="TEXT", help="case-insensitive text to find in the key or value")
    sub.add_argument("--start", type=_start, metavar="X",
                     help="offset, -N for the last N of each partition, or ISO time (inclusive)")  # fmt: skip
    sub.add_argument("--end", type=offset_or_time, metavar="X", help="offset or ISO time (exclusive)")
    sub.add_argument("--partitions", type=partition_list, metavar="P,P", help="e.g. 0,1 (default: all)")
    sub.add_argument("--limit", type=int, default=20, metavar="N", help="rows per page (default 20)")
    sub.add_argument("--after", type=_after, metavar="P:O", help="the page after this partition:offset")
    sub.add_argument("--transactions", action="store_true",
                     help="also records of aborted and open transactions, with a status, and the markers")  # fmt: skip
