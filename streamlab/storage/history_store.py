"""History samples in the catalog: offsets over time that survive reopening the directory.

The front's sampler (``lab.start_history``) writes a sample every few seconds; the rows
are small (one per partition and per group partition) and samples older than ``keep_ms``
are deleted as new ones arrive. The tables are the catalog's, written in one transaction
per sample, so a crash keeps whole samples only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamlab.storage.catalog import Catalog

_DDL = """
CREATE TABLE IF NOT EXISTS history_partitions (
    time_ms BIGINT NOT NULL, topic VARCHAR NOT NULL, partition INTEGER NOT NULL,
    log_start_offset BIGINT NOT NULL, end_offset BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS history_groups (
    time_ms BIGINT NOT NULL, group_id VARCHAR NOT NULL, topic VARCHAR NOT NULL, partition INTEGER NOT NULL,
    committed BIGINT NOT NULL, end_offset BIGINT NOT NULL, lag BIGINT NOT NULL, time_lag_ms BIGINT NOT NULL);
"""


class CatalogHistory:
    """The history store (:class:`streamlab.port.history.HistoryStore`) of an embedded broker."""

    def __init__(self, catalog: Catalog, *, keep_ms: int) -> None:
        self._catalog = catalog
        self._keep_ms = keep_ms
        catalog.execute(_DDL)

    def add(self, time_ms: int, partitions: Sequence[tuple[Any, ...]], groups: Sequence[tuple[Any, ...]]) -> None:
        with self._catalog.transaction() as con:
            horizon = time_ms - self._keep_ms
            con.execute("DELETE FROM history_partitions WHERE time_ms < ?", [horizon])
            con.execute("DELETE FROM history_groups WHERE time_ms < ?", [horizon])
            if partitions:
                con.executemany("INSERT INTO history_partitions VALUES (?, ?, ?, ?, ?)",
                                [[time_ms, *row] for row in partitions])  # fmt: skip
            if groups:
                con.executemany("INSERT INTO history_groups VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                [[time_ms, *row] for row in groups])  # fmt: skip

    def partition_rows(self, topic: str) -> list[tuple[int, int, int, int]]:
        return self._catalog.query(
            "SELECT time_ms, partition, log_start_offset, end_offset FROM history_partitions "
            "WHERE topic = ? ORDER BY time_ms, partition",
            [topic],
        )

    def group_rows(self, group: str) -> list[tuple[int, str, int, int, int, int, int]]:
        return self._catalog.query(
            "SELECT time_ms, topic, partition, committed, end_offset, lag, time_lag_ms FROM history_groups "
            "WHERE group_id = ? ORDER BY time_ms, topic, partition",
            [group],
        )

    def names(self) -> tuple[list[str], list[str]]:
        topics = self._catalog.query("SELECT DISTINCT topic FROM history_partitions ORDER BY 1")
        groups = self._catalog.query("SELECT DISTINCT group_id FROM history_groups ORDER BY 1")
        return [t for (t,) in topics], [g for (g,) in groups]
