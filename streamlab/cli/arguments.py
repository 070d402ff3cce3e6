"""Argument types the commands share (``--start``/``--end``, ``--partitions``)."""

from __future__ import annotations

import argparse


def offset_or_time(text: str) -> int | str:
    """An offset (digits) or a time (ISO text), as ``lab.replay``'s ``start``/``end``."""
    return int(text) if text.isascii() and text.isdigit() else text


def partition_list(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated partition numbers, got {text!r}") from None
