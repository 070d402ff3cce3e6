from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import streamlab

_names = itertools.count()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[streamlab.Lab]:
    with streamlab.connect(tmp_path / "lab") as opened:
        yield opened


@pytest.fixture
def make_topic(lab: streamlab.Lab) -> Callable[..., str]:
    """Create a topic with a unique name and return the name."""

    def make(partitions: int = 1, **config: object) -> str:
        name = f"t{next(_names)}"
        lab.create_topic(name, partitions=partitions, config={k.replace("_", "."): v for k, v in config.items()})
        return name

    return make
