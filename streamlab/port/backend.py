"""The backend port: what the one :class:`~streamlab.front.lab.Lab` front needs from a backend.

Two backends implement it: the embedded broker (:mod:`streamlab.client.backend`) and a
Kafka cluster (:mod:`streamlab.kafka.backend`). The front does everything that does not
depend on where the records live (validating arguments, parsing times, shaping tables,
progress, SQL checks); a backend receives validated arguments and answers with plain rows
or Arrow tables. mypy checks both backends against this Protocol, so they cannot drift.

Anything a backend cannot do raises :class:`~streamlab.errors.UnsupportedOperationError`
from the backend method, with a message saying where to do it instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa

from streamlab.api import Consumer, Producer, ShareConsumer
from streamlab.model.views import Bounds
from streamlab.port.history import HistoryStore
from streamlab.port.schemas import SchemaRegistryPort

TopicRow = Mapping[str, Any]  # name, partitions, records, bytes, config


@dataclass(frozen=True, slots=True)
class ShareGroupSnapshot:
    """One share group's partitions, in-flight records and members, all of one instant."""

    partitions: list[Any]
    records: list[Any]
    members: list[Any]
    delivery_count_limit: int
    dead_letter_topic: str | None


OffsetRow = tuple[int, int, int]  # partition, log start offset, high watermark


class Backend(Protocol):
    """One place records live. Every method may raise :class:`StreamlabError` subclasses."""

    def describe(self) -> str:
        """What this backend is, for ``repr(lab)`` (a directory or a ``kafka://`` address)."""

    # topics
    def create_topic(
        self, name: str, partitions: int, config: dict[str, Any], replication_factor: int | None
    ) -> None: ...
    def create_partitions(self, name: str, partitions: int) -> None: ...
    def alter_topic_config(self, name: str, config: dict[str, Any]) -> dict[str, Any]: ...
    def topic_config(self, name: str) -> dict[str, Any]:
        """The config of ``name`` (raises UnknownTopicError); a cluster may leave defaults out."""

    def delete_topic(self, name: str) -> None: ...
    def topic_rows(self) -> Sequence[TopicRow]: ...
    def offset_rows(self, topic: str) -> Sequence[OffsetRow]: ...
    def partition_count(self, topic: str) -> int:
        """The partitions of ``topic`` now (raises UnknownTopicError)."""

    def offsets_for_time(self, topic: str, partitions: Sequence[int], ms: int) -> dict[int, int]:
        """Per partition, the first offset whose record's timestamp is >= ``ms`` (else the end)."""

    def apply_retention(self, now_ms: int) -> Any: ...
    def roll(self, topic: str) -> None: ...

    # clients
    def producer(self, **config: Any) -> Producer: ...
    def consumer(self, topics: Iterable[str] | str | None, **config: Any) -> Consumer: ...
    def share_consumer(self, topics: Iterable[str] | str, **config: Any) -> ShareConsumer: ...
    def share_state(self, group: str) -> pd.DataFrame: ...
    def share_group_snapshot(self, group: str) -> ShareGroupSnapshot | None:
        """None when no share consumer has joined ``group`` yet."""

    def partition_bytes(self, topic: str, partition: int) -> int | None:
        """Bytes the partition holds on disk, when the backend knows (None otherwise)."""

    # groups
    def groups(self) -> pd.DataFrame: ...
    def describe_group(self, group: str) -> pd.DataFrame: ...
    def lag(self, group: str) -> pd.DataFrame: ...
    def rebalances(self, group: str) -> pd.DataFrame: ...
    def reset_offsets(self, group: str, to: Any, *, dry_run: bool, topics: list[str] | None) -> pd.DataFrame: ...

    # analytics
    def estimate_rows(self, topic: str, bounds: Bounds) -> int: ...
    def replay_table(
        self, topic: str, bounds: Bounds, *, raw: bool, headers: bool, progress: Any, committed: bool = True
    ) -> pa.Table:
        """Decoded records of ``bounds`` ordered by partition and offset (see
        :func:`streamlab.model.dataframes.replay_dataframe`). ``progress`` is called with
        the rows of each chunk as it arrives, or is None. ``committed``: as a read_committed
        consumer sees them (else aborted transactions' records too); markers never."""

    def sql_table(self, statement: str, *, committed: bool = True) -> pa.Table: ...
    def transaction_rows(self, topic: str, partition: int, start: int, end: int) -> pa.Table:
        """The offsets of [start, end) a read_committed reader does not get, for showing
        transactions to learners: columns offset, timestamp, transaction ("aborted", "open"
        or "marker"), marker ("COMMIT"/"ABORT" on marker rows), producer_id, producer_epoch
        (null where unknown). A backend that cannot see markers leaves them out (Kafka's
        clients hide control records) and says so in its docstring."""

    # history
    def history(self) -> HistoryStore:
        """Where this backend keeps history samples (the catalog, or memory for Kafka)."""

    def schema_registry(self) -> SchemaRegistryPort:
        """The Schema Registry of this backend (``lab.schemas``)."""

    def has_schema_registry(self) -> bool:
        """Whether a registry is in use, asked without creating one (an embedded lab's
        exists once a schema was registered; a Kafka lab's when ``schema_registry=`` was given)."""

    # the Kafka protocol endpoint (Lab.serve)
    def broker_to_serve(self) -> Any:
        """The open :class:`~streamlab.broker.Broker` that ``Lab.serve`` runs the wire
        server on (the front starts it: backends stand beside the server, not above it;
        typed Any because the Kafka backend may not import the broker). Raises
        UnsupportedOperationError where there is none (a Kafka cluster is an endpoint)."""

    def close(self) -> None: ...


__all__ = ["Backend", "OffsetRow", "ShareGroupSnapshot", "TopicRow"]
