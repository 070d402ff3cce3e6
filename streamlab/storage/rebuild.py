"""Opening the catalog, and rebuilding it from the files on disk when it is lost or damaged.

A data directory whose ``catalog.duckdb`` is missing (deleted by hand, lost in a copy) or
cannot be opened, but which holds topic folders, is never opened as an empty broker: a
new catalog is built from what the disk still says, and a :class:`RecoveryWarning` tells
what could not be recovered.

* topics, partition counts, configs and creation times come from each topic's
  ``topic.json`` (see :mod:`manifest`); a topic folder without one is rebuilt with the
  partitions found on disk and ``retention.ms=-1``, so that guessing a config never
  deletes anything;
* segments are indexed from the Parquet files by the log's own recovery, which also
  re-reads every active segment; each partition's log start is its oldest file's base;
* committed offsets come from the last checkpoint copy plus the commit journal;
* the history of group rebalances lived only in the catalog and is lost.

A damaged catalog is moved aside (``catalog.duckdb.damaged-<time>``), never deleted.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import duckdb

from streamlab.config import topic_config
from streamlab.errors import RecoveryWarning, StorageError
from streamlab.storage import manifest
from streamlab.storage.catalog import Catalog

CATALOG_FILE = "catalog.duckdb"
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def open_catalog(root: Path) -> Catalog:
    path = root / CATALOG_FILE
    folders = _topic_folders(root)
    if path.exists():
        try:
            catalog = Catalog(path)
        except duckdb.Error as exc:
            if not folders:
                raise StorageError(f"the catalog {path} cannot be opened: {exc}") from exc
            aside = path.with_name(f"{CATALOG_FILE}.damaged-{int(time.time())}")
            path.rename(aside)
            wal = path.with_name(CATALOG_FILE + ".wal")
            if wal.exists():
                wal.rename(aside.with_name(aside.name + ".wal"))
            cause = f"the catalog {path} cannot be opened ({exc}); moved it to {aside.name}"
            return _rebuild(Catalog(path), root, folders, cause)
        _copy_missing_manifests(catalog, root)
        return catalog
    if not folders:
        return Catalog(path)  # a new data directory
    return _rebuild(Catalog(path), root, folders, f"the catalog {path} is missing")


def _warn(message: str) -> None:
    warnings.warn(RecoveryWarning(message), stacklevel=4)


def _topic_folders(root: Path) -> list[Path]:
    topics = root / "topics"
    if not topics.is_dir():
        return []
    return sorted(p for p in topics.iterdir() if p.is_dir() and _TOPIC_NAME.fullmatch(p.name))


def _partition_folders(folder: Path) -> list[int]:
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def _rebuild(catalog: Catalog, root: Path, folders: list[Path], cause: str) -> Catalog:
    notes = [f"{cause}; rebuilt it from the files in {root / 'topics'}"]
    guessed = []
    for folder in folders:
        found = manifest.read_topic(folder)
        on_disk = _partition_folders(folder)
        if found is not None and found.get("name") == folder.name:
            partitions = max(int(found["partitions"]), len(on_disk))
            config, created_ms = dict(found["config"]), int(found["created_ms"])
        else:
            if not on_disk:
                continue
            partitions, config, created_ms = max(on_disk) + 1, {"retention.ms": -1}, None
            guessed.append(folder.name)
        catalog.add_topic(folder.name, partitions, topic_config(config), created_ms=created_ms)
        for p in range(partitions):
            bases = [int(f.name[:20]) for f in (folder / str(p)).glob("*") if f.name[:20].isdigit()]
            if bases:
                catalog.set_log_start_offset(folder.name, p, min(bases))
    if guessed:
        notes.append(f"topics {guessed} had no topic.json: rebuilt with the partitions on disk and retention.ms=-1")
    if not (root / manifest.OFFSETS_CHECKPOINT).exists():
        notes.append("no checkpoint of committed offsets was found: groups keep only the commits in the journal")
    notes.append("the history of group rebalances was kept only in the lost catalog and is gone")
    _warn("; ".join(notes))
    return catalog


def _copy_missing_manifests(catalog: Catalog, root: Path) -> None:
    """Directories made before manifests existed get them on their next open."""
    for name in catalog.topics():
        folder = root / "topics" / name
        if _TOPIC_NAME.fullmatch(name) and folder.is_dir() and not (folder / manifest.TOPIC_MANIFEST).exists():
            catalog.rewrite_manifest(name)
