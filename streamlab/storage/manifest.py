"""Copies of the catalog's small durable state beside the data, so a lost or damaged
``catalog.duckdb`` can be rebuilt from the files on disk (see :mod:`rebuild`).

* ``topics/<topic>/topic.json``: partitions, config and creation time of one topic;
* ``committed_offsets.checkpoint.json``: every group's committed offsets at the last
  journal checkpoint (the journal holds what came after).

Each is written whole under a temporary name, fsynced and renamed, so a crash leaves the
old copy or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TOPIC_MANIFEST = "topic.json"
OFFSETS_CHECKPOINT = "committed_offsets.checkpoint.json"


def write_atomically(path: Path, payload: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(json.dumps(payload, separators=(",", ":")).encode())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_topic(root: Path, name: str, partitions: int, config: dict[str, Any], created_ms: int) -> None:
    folder = root / "topics" / name
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(
        folder / TOPIC_MANIFEST, {"name": name, "partitions": partitions, "config": config, "created_ms": created_ms}
    )


def read_topic(folder: Path) -> dict[str, Any] | None:
    """The manifest in a topic folder, or None when it is missing or unreadable."""
    try:
        data = json.loads((folder / TOPIC_MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
