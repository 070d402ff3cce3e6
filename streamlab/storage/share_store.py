"""Share-group state in the catalog: each group's config, each share-partition's bounds
(SPSO, SPEO) and each in-flight record's state and delivery count.

Plain rows in, plain rows out: the share-partition state machine
(:mod:`streamlab.groups.share`) turns them into its objects. Owners and lock expiry are
not stored: no member outlives the broker. Each save is one catalog transaction, so a crash
keeps a share-partition's state as of a whole save.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamlab.storage.catalog import Catalog

_DDL = """
CREATE TABLE IF NOT EXISTS share_groups (
    group_id VARCHAR PRIMARY KEY, config JSON NOT NULL, updated_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS share_partitions (
    group_id VARCHAR, topic VARCHAR, partition INTEGER, start_offset BIGINT NOT NULL, end_offset BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition));
CREATE TABLE IF NOT EXISTS share_records (
    group_id VARCHAR, topic VARCHAR, partition INTEGER, "offset" BIGINT NOT NULL, state VARCHAR NOT NULL,
    delivery_count INTEGER NOT NULL);
"""

StoredRecord = tuple[int, str, int]  # offset, state, delivery count


@dataclass(frozen=True, slots=True)
class StoredSharePartition:
    topic: str
    partition: int
    start_offset: int
    end_offset: int
    records: list[StoredRecord]  # in offset order, all within [start_offset, end_offset)


class ShareStore:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        catalog.execute(_DDL)

    def save_group(self, group_id: str, config_json: str, *, time_ms: int) -> None:
        self._catalog.execute("INSERT OR REPLACE INTO share_groups VALUES (?, ?, ?)", [group_id, config_json, time_ms])

    def groups(self) -> dict[str, str]:
        """Every share group's config as it was saved (JSON text)."""
        return dict(self._catalog.query("SELECT group_id, config FROM share_groups ORDER BY group_id"))

    def save_partition(
        self,
        group_id: str,
        topic: str,
        partition: int,
        *,
        bounds: tuple[int, int] | None,
        start_offset: int,
        changed: list[int],
        records: list[StoredRecord],
    ) -> None:
        """In one transaction: the new (SPSO, SPEO) when ``bounds`` is given; rows below
        ``start_offset`` and the ``changed`` offsets dropped; ``records`` written."""
        key = [group_id, topic, partition]
        with self._catalog.transaction() as con:
            if bounds is not None:
                con.execute("INSERT OR REPLACE INTO share_partitions VALUES (?, ?, ?, ?, ?)", [*key, *bounds])
            con.execute(
                'DELETE FROM share_records WHERE group_id = ? AND topic = ? AND partition = ? AND ("offset" < ? '
                'OR "offset" IN (SELECT unnest(?::BIGINT[])))',
                [*key, start_offset, changed],
            )
            if records:
                offsets, states, counts = (list(column) for column in zip(*records, strict=True))
                con.execute(
                    "INSERT INTO share_records SELECT ?, ?, ?, unnest(?::BIGINT[]), unnest(?::VARCHAR[]), "
                    "unnest(?::INTEGER[])",
                    [*key, offsets, states, counts],
                )

    def load(self, group_id: str) -> list[StoredSharePartition]:
        bounds = self._catalog.query(
            "SELECT topic, partition, start_offset, end_offset FROM share_partitions WHERE group_id = ? "
            "ORDER BY topic, partition",
            [group_id],
        )
        records: dict[tuple[str, int], list[StoredRecord]] = {}
        for t, p, offset, state, count in self._catalog.query(
            'SELECT topic, partition, "offset", state, delivery_count FROM share_records WHERE group_id = ? '
            'ORDER BY topic, partition, "offset"',
            [group_id],
        ):
            records.setdefault((t, p), []).append((offset, state, count))
        return [
            StoredSharePartition(t, p, start, end, [r for r in records.get((t, p), []) if start <= r[0] < end])
            for t, p, start, end in bounds
        ]

    def delete_partitions(self, group_id: str, topic: str) -> None:
        """Forget a deleted topic's share state."""
        with self._catalog.transaction() as con:
            for table in ("share_partitions", "share_records"):
                con.execute(f"DELETE FROM {table} WHERE group_id = ? AND topic = ?", [group_id, topic])
