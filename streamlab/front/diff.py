"""``lab.diff_topics``: two result topics side by side, only where they differ.

A job's output topic is a log of results: a window is written when it closes, again after
an at-least-once restart, again by a re-run into the same topic. What a run *computed* is
the latest value per key, so that is what is compared: the last record per key in each
topic (by timestamp, then partition and offset), outer-joined on the key. Written on
replay's DataFrames, so it is the same on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from streamlab.errors import ConfigError

RECORD_COLUMNS = ("partition", "offset", "timestamp", "headers")  # where a record sits, not what it says


def diff_frames(
    old: pd.DataFrame, new: pd.DataFrame, *, left: str, right: str, key: str | Sequence[str],
    columns: Sequence[str] | None,
) -> pd.DataFrame:  # fmt: skip
    """Rows of ``key`` whose latest values differ between ``old`` (topic ``left``) and
    ``new`` (topic ``right``); see :meth:`Lab.diff_topics`."""
    keys = [key] if isinstance(key, str) else list(key)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"key must be a column name or a list of them, got {key!r}")
    if left == right:
        raise ConfigError(f"diff_topics compares two topics; both are {left!r}")
    for name, frame in ((left, old), (right, new)):
        missing = [k for k in keys if k not in frame.columns and not frame.empty]
        if missing:
            raise ConfigError(f"topic {name!r} has no column {missing} to match on; its columns: {list(frame.columns)}")
    found = [c for c in [*old.columns, *new.columns] if c not in keys and c not in RECORD_COLUMNS]
    compared = list(dict.fromkeys(found)) if columns is None else list(columns)
    if isinstance(columns, str) or not all(isinstance(c, str) for c in compared):
        raise ConfigError(f"columns must be a list of column names, got {columns!r}")
    unknown = [c for c in compared if c not in old.columns and c not in new.columns]
    if unknown:
        raise ConfigError(f"no column {unknown} in {left!r} or {right!r}")
    suffixed = {side: {c: f"{c}@{side}" for c in compared} for side in (left, right)}
    merged = pd.merge(
        _latest(old, keys, compared).rename(columns=suffixed[left]),
        _latest(new, keys, compared).rename(columns=suffixed[right]),
        on=keys, how="outer", indicator=True,
    )  # fmt: skip
    differs = pd.Series(False, index=merged.index)
    for c in compared:
        a, b = merged[suffixed[left][c]], merged[suffixed[right][c]]
        same = (a == b).fillna(False).astype(bool) | (a.isna() & b.isna())
        differs |= ~same
    change = merged["_merge"].map({"left_only": "removed", "right_only": "added", "both": "changed"}).astype(str)
    merged.insert(len(keys), "change", change)
    out = merged[(merged["_merge"] != "both") | differs].drop(columns="_merge")
    ordered = [*keys, "change", *(name for c in compared for name in (suffixed[left][c], suffixed[right][c]))]
    return out[ordered].sort_values(keys, kind="stable").reset_index(drop=True)


def _latest(frame: pd.DataFrame, keys: list[str], compared: list[str]) -> pd.DataFrame:
    """The last record per key: by timestamp, then partition and offset (replay's order)."""
    chosen = frame.reindex(columns=[*keys, *compared])  # a column one topic lacks is NA there
    if "timestamp" in frame.columns and not frame.empty:
        chosen = chosen.iloc[frame["timestamp"].argsort(kind="stable")]
    return chosen.drop_duplicates(subset=keys, keep="last")
