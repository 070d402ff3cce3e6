"""lab.diff_topics on every backend: the latest value per key in each topic, only the
keys where they differ, with added/removed/changed."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

import streamlab
from streamlab.errors import ConfigError


def test_diff_topics_shows_only_latest_values_that_differ(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    old, new = make_topic(2), make_topic(2)
    with lab.producer() as producer:
        for key, start, total in [("x", 0, 1), ("y", 0, 2), ("z", 0, 3), ("x", 0, 5), ("x", 60, 7)]:
            producer.send(old, {"start": start, "total": total}, key=key, timestamp=1_000 + start)
        for key, start, total in [("x", 0, 5), ("x", 60, 7), ("y", 0, 20), ("w", 0, 4)]:
            producer.send(new, {"start": start, "total": total}, key=key, timestamp=1_000 + start)
        producer.flush(timeout=10)

    diff = lab.diff_topics(old, new, key=["key", "start"])
    assert list(diff.columns) == ["key", "start", "change", f"total@{old}", f"total@{new}"]
    rows = [tuple(None if pd.isna(v) else v for v in row) for row in diff.itertuples(index=False)]
    # x@0 was rewritten in old with the value new has: its latest value is the same, no row
    assert rows == [("w", 0, "added", None, 4), ("y", 0, "changed", 2, 20), ("z", 0, "removed", 3, None)]


def test_diff_topics_of_equal_results_is_empty_and_bad_keys_are_named(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    first, second = make_topic(), make_topic(3)
    with lab.producer() as producer:
        for topic in (first, second):
            for i in range(10):
                producer.send(topic, {"n": i, "square": i * i}, key=f"k{i}")
        producer.flush(timeout=10)
    assert lab.diff_topics(first, second).empty
    assert lab.diff_topics(first, second, columns=["square"]).empty
    with pytest.raises(ConfigError, match="no column"):
        lab.diff_topics(first, second, key="nope")
    with pytest.raises(ConfigError, match="both are"):
        lab.diff_topics(first, first)
