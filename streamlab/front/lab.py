"""``Lab``: what ``streamlab.connect`` returns, written once over a backend port.

Everything here is the same whatever the backend: arguments checked, names validated,
config keys accepted with dots or underscores, times parsed, results shaped into the same
DataFrames, replays with a progress bar, SQL checked. The backend (:mod:`.port`) is the
embedded broker or a Kafka cluster; it answers with rows and Arrow tables.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from streamlab import api
from streamlab.errors import (
    ClosedError,
    ConfigError,
    InvalidPartitionsError,
    UnknownGroupWarning,
    UnsupportedOperationError,
)
from streamlab.front.history import History, check_names
from streamlab.front.record_formats import TopicFormats, needs_stored, topic_formats
from streamlab.front.registry_sql import registry_sql
from streamlab.front.replay_frame import replay_bound
from streamlab.front.schemas import Schemas
from streamlab.front.serving import LabEndpoint
from streamlab.front.user_sql import check_statement, query_errors
from streamlab.model.dataframes import replay_dataframe, typed_frame
from streamlab.model.names import MAX_PARTITIONS, validate_topic_name
from streamlab.model.timeparse import to_ms
from streamlab.model.types import unknown_partition
from streamlab.model.views import Bounds
from streamlab.port.backend import Backend

if TYPE_CHECKING:
    from pathlib import Path

    from streamlab.front.jobs import Job

PROGRESS_FROM_ROWS = 500_000  # replays at least this large show a progress bar unless progress=False


class Lab:
    """A broker you can produce to, consume from, replay and query (embedded or Kafka)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._closed = False
        self._history: History | None = None  # start_history()
        self._endpoint = LabEndpoint(backend, lambda: self._closed)  # serve()
        self._formats = TopicFormats(backend, lambda: self.schemas)

    def __repr__(self) -> str:
        return f"<streamlab.Lab {self.backend.describe()}{' closed' if self._closed else ''}>"

    # topics -----------------------------------------------------------------------------
    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        config: Mapping[str, Any] | None = None,
        *,
        replication_factor: int | None = None,
    ) -> None:
        """Create a topic; ``config`` keys may use dots or underscores (``retention.ms``).
        ``replication_factor`` defaults to the cluster's (1 on the embedded broker)."""
        validate_topic_name(name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidPartitionsError(
                f"partitions must be an integer from 1 to {MAX_PARTITIONS}, got {partitions!r}", topic=name
            )
        self.backend.create_topic(name, partitions, _dotted(config), replication_factor)

    def create_partitions(self, name: str, partitions: int) -> None:
        """Grow ``name`` to ``partitions`` partitions (Kafka never shrinks a topic)."""
        self.backend.create_partitions(name, partitions)

    def alter_topic_config(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return self.backend.alter_topic_config(name, _dotted(config))

    def delete_topic(self, name: str) -> None:
        self.backend.delete_topic(name)

    def topics(self) -> pd.DataFrame:
        """One row per topic: partitions, records (high watermark - log start), bytes, config."""
        return pd.DataFrame(self.backend.topic_rows(), columns=["name", "partitions", "records", "bytes", "config"])

    def offsets(self, topic: str) -> pd.DataFrame:
        columns = ["partition", "log_start_offset", "high_watermark"]
        return pd.DataFrame(self.backend.offset_rows(topic), columns=columns)

    def apply_retention(self, *, now: Any = None) -> Any:
        """Delete expired segments and compact compacted topics now (the embedded broker
        also does it on open and whenever a segment is sealed)."""
        now_ms = int(time.time() * 1000) if now is None else to_ms(now, what="now")
        return self.backend.apply_retention(now_ms)

    def roll(self, topic: str) -> None:
        """Seal every partition's active segment into Parquet now."""
        self.backend.roll(topic)

    # clients ----------------------------------------------------------------------------
    def producer(self, **config: Any) -> api.Producer:
        return self.backend.producer(**config)

    def consumer(
        self,
        topics: Iterable[str] | str | None = None,
        *,
        key_format: str | None = None,
        value_format: str | None = None,
        **config: Any,
    ) -> api.Consumer:
        """A consumer. ``key_format``/``value_format`` (as in :meth:`replay`; None, the
        default: each topic's own, see :meth:`set_format`) choose how ``poll()`` and
        ``poll_frame()`` read keys and values: under "auto", those in Confluent's wire format
        are decoded through :attr:`schemas`; ``"bytes"`` leaves them the bytes they are."""
        return self.backend.consumer(topics, decoder=self._formats.consumer_decoder(key_format, value_format), **config)

    def share_consumer(self, topics: Iterable[str] | str, *, group: str, **config: Any) -> api.ShareConsumer:
        """A member of share group ``group`` (KIP-932): records are handed out one member at
        a time under a ``lock_ms`` lock (default 30,000) and acknowledged one by one (accept,
        release, reject). ``config`` (:class:`~streamlab.port.share_base.ShareConsumerConfig`):
        ``lock_ms``, ``dead_letter_topic`` (default None), ``delivery_count_limit`` (5),
        ``auto_offset_reset`` (default "latest", as in Kafka), ``acknowledgement_mode``
        ("implicit", the default, or "explicit"), ``max_poll_records`` (500) and ``client_id``."""
        return self.backend.share_consumer(topics, group=group, **config)

    def share_state(self, group: str) -> pd.DataFrame:
        """One row per in-flight record of share group ``group``: topic, partition, offset,
        state (available/acquired/acknowledged/archived), delivery_count, owner, lock_expires."""
        return self.backend.share_state(group)

    # consumer groups ------------------------------------------------------------------
    def groups(self) -> pd.DataFrame:
        """Every group: classic consumer groups and share groups, told apart by ``type``."""
        return self.backend.groups()

    def describe_group(self, group: str) -> pd.DataFrame:
        """One row per partition a member owns: member, client_id, host, topic, partition,
        and member_epoch for consumer-protocol (KIP-848) groups (NA for classic groups,
        which have generations, and on ``kafka://``, whose admin client is not told it)."""
        return self.backend.describe_group(group)

    def lag(self, group: str) -> pd.DataFrame:
        """Per partition: committed offset, end offset, lag in records and in time. A group
        with nothing committed and no members gives an empty frame and an
        :class:`~streamlab.errors.UnknownGroupWarning` naming the groups there are."""
        lag = self.backend.lag(group)
        if lag.empty:
            try:
                known = self.backend.groups()["group"].tolist()
            except UnsupportedOperationError:  # a cluster without ListGroups (librdkafka's mock)
                return lag
            if group not in known:
                warnings.warn(
                    f"there is no group {group!r} (no members, no committed offsets); groups: {known}",
                    UnknownGroupWarning, stacklevel=2,
                )  # fmt: skip
        return lag

    def rebalances(self, group: str) -> pd.DataFrame:
        """Every ownership change, generation by generation: durable across restarts."""
        return self.backend.rebalances(group)

    def reset_offsets(
        self, group: str, to: Any = "earliest", *, dry_run: bool = True, topics: list[str] | None = None
    ) -> pd.DataFrame:
        """Preview moving ``group``'s offsets to "earliest", "latest", a time or {tp: offset};
        ``dry_run=False`` applies it (only while the group has no active members)."""
        return self.backend.reset_offsets(group, to, dry_run=dry_run, topics=topics)

    # analytics --------------------------------------------------------------------------
    def replay(
        self,
        topic: str,
        start: Any = None,
        end: Any = None,
        partitions: Sequence[int] | None = None,
        *,
        raw: bool = False,
        headers: bool = False,
        progress: bool | None = None,
        key_format: str | None = None,
        value_format: str | None = None,
        isolation_level: api.IsolationLevel = "read_committed",
    ) -> pd.DataFrame:
        """Records of ``topic`` from ``start`` (inclusive) to ``end`` (exclusive), as pandas.

        ``start``/``end`` are offsets (int) or times (datetime, ISO string). JSON-object
        values are spread into a column per field; ``raw=True`` adds the ``value`` column.
        Rows are ordered by partition, then offset. A progress bar (tqdm.auto) follows
        replays of 500,000 records or more; ``progress`` forces it on or off.
        ``key_format``/``value_format`` ("auto", "json", "avro", "protobuf", "jsonschema",
        "string", "bytes") choose how keys and values are read for this call; None (the
        default) reads the topic's own formats (:meth:`set_format`, else "auto"; see
        ``front.record_formats``).
        Records of transactions show once committed (``isolation_level="read_uncommitted"``:
        also those aborted or still open); transaction markers never do.
        """
        key_format, value_format = self._formats.resolve(topic, key_format, value_format)
        committed = _committed(isolation_level)
        count = self.backend.partition_count(topic)
        bounds = Bounds(partitions=_partitions(topic, partitions, count), **replay_bound("start", start),
                        **replay_bound("end", end))  # fmt: skip
        total = self.backend.estimate_rows(topic, bounds)
        show = progress if progress is not None else total >= PROGRESS_FROM_ROWS
        from tqdm.auto import tqdm  # imported here: only replays pay for it

        with tqdm(total=total, disable=not show, desc=f"replay {topic}", unit="rec") as bar:
            stored = raw or needs_stored(value_format)
            table = self.backend.replay_table(topic, bounds, raw=stored, headers=headers,
                                              progress=bar.update if show else None, committed=committed)  # fmt: skip
            if show and bar.n != bar.total:  # an estimate off (times out of order): end the bar full
                bar.total = bar.n
                bar.refresh()
        frame = replay_dataframe(table, raw=stored)
        return self._formats.read(topic, frame, key_format, value_format, raw=raw, decode_keys=not raw)

    def set_format(self, topic: str, *, key_format: str | None = None, value_format: str | None = None) -> None:
        """Say once how ``topic``'s keys and/or values are read when a call does not say:
        ``"auto"``, ``"json"``, ``"avro"``, ``"protobuf"``, ``"jsonschema"``, ``"string"`` or
        ``"bytes"`` (as ``replay``'s ``key_format``/``value_format``). Honoured by replay,
        sql, consumers' poll, browse, the CLI and the widgets. Kept as the topic configs
        ``streamlab.key.format``/``streamlab.value.format`` in the data directory (so
        ``streamlab serve`` and its Kafka clients see them too). Apache Kafka refuses config
        names it does not know: there, pass the formats per call."""
        self._formats.keep(topic, key_format, value_format)

    def formats(self, topic: str) -> dict[str, str]:
        """How ``topic``'s keys and values are read when a call does not say (see :meth:`set_format`)."""
        key, value = topic_formats(self.backend, topic)
        return {"key_format": key, "value_format": value}

    @property
    def schemas(self) -> Schemas:
        """The Schema Registry (:class:`~streamlab.front.schemas.Schemas`): the data
        directory's own for an embedded lab, ``connect(..., schema_registry=URL)``'s for kafka://."""
        return Schemas(self.backend.schema_registry())

    def sql(self, statement: str, *, isolation_level: api.IsolationLevel = "read_committed") -> pd.DataFrame:
        """Run DuckDB SQL where every topic the statement names is a table (quote
        ``"offset"``: it is a keyword). SQL that DuckDB refuses raises
        :class:`~streamlab.errors.QueryError` with its message. Topics hold committed
        records (``isolation_level="read_uncommitted"``: every record), as in :meth:`replay`.
        Topics with a ``<topic>-value`` subject in :attr:`schemas` have their Avro, JSON
        Schema or Protobuf values decoded as replay decodes them (replayed into memory
        first; see :mod:`streamlab.front.registry_sql`)."""
        check_statement(statement)
        committed = _committed(isolation_level)
        with query_errors():
            decoded = registry_sql(self, statement, isolation_level=isolation_level)  # Avro... topics
            if decoded is not None:
                return decoded
            table = self.backend.sql_table(statement, committed=committed)
        return typed_frame(table)

    def browse(
        self,
        topic: str,
        where: str | None = None,
        search: str | None = None,
        start: Any = None,
        end: Any = None,
        partitions: Sequence[int] | None = None,
        limit: int = 100,
        *,
        after: tuple[int, int] | None = None,
        key_format: str | None = None,
        value_format: str | None = None,
        transactions: bool = False,
    ) -> pd.DataFrame:
        """Up to ``limit`` records of ``topic`` that match, ordered by partition then offset,
        read a window at a time (never the whole topic).

        ``where`` is a DuckDB expression over the decoded columns (``"amount > 10 AND page =
        'home'"``; quote ``"offset"``), ``search`` a case-insensitive text to find in the key
        or value. ``start``/``end`` are offsets or times as in :meth:`replay`; a negative
        ``start`` (``start=-100``) means the last 100 offsets of each partition. ``after=(partition,
        offset)`` continues after the last row of the previous page. Columns are those of
        ``replay(raw=True, headers=True)``: JSON fields spread, ``value`` the stored text; keys
        and values read as ``key_format``/``value_format`` say (None: the topic's own, as in
        :meth:`replay`), Confluent-framed ones decoded after the filters ran on the stored bytes.

        ``transactions=True`` shows what read_committed readers do not see, for learning
        how transactions work: records of aborted and still open transactions too, a
        ``transaction`` column ("committed", "aborted", "open", "marker"), and the COMMIT /
        ABORT markers as rows (``marker``, ``producer_id``, ``producer_epoch``) at the offsets
        they take (``where`` and ``search`` see them too: their key and value are null). On
        ``kafka://`` there are no marker rows (Kafka's clients hide control records): their
        offsets are gaps.
        """
        from streamlab.front.browse import browse

        count = self.backend.partition_count(topic)
        chosen = _partitions(topic, partitions, count)
        page = browse(self.backend, topic, range(count) if chosen is None else chosen,
                      where=where, search=search, start=start, end=end, limit=limit, after=after,
                      transactions=transactions)  # fmt: skip
        key_format, value_format = self._formats.resolve(topic, key_format, value_format)
        # the filters saw the stored bytes; what the page shows is decoded
        return self._formats.read(topic, page, key_format, value_format, raw=True, decode_keys=True)

    # the Kafka protocol endpoint -------------------------------------------------------
    def serve(
        self, port: int | None = None, *, host: str = "127.0.0.1", schema_registry_port: int | None = None
    ) -> str:
        """Serve this embedded lab's broker over the Kafka protocol, in a background thread
        of this process, and return the bootstrap address ``"HOST:PORT"`` once it accepts
        connections (a free port unless ``port`` is given). Any Kafka client, in this process
        or another, then works on this directory beside the lab; :meth:`close` stops it.
        Calling it again returns the same address; asking for another port raises ConfigError.
        A ``kafka://`` lab raises UnsupportedOperationError: its cluster is the endpoint.
        ``schema_registry_port`` (0: a free one) also serves this directory's Schema Registry
        (Confluent's REST API, as ``streamlab serve --schema-registry-port``); its URL is then
        :attr:`schema_registry_url`."""
        return self._endpoint.serve(port, host=host, schema_registry_port=schema_registry_port)

    @property
    def schema_registry_url(self) -> str | None:
        """The URL of the Schema Registry :meth:`serve` serves (``serve(schema_registry_port=0)``),
        else None."""
        return self._endpoint.registry_url

    # streaming jobs ---------------------------------------------------------------------
    def start_job(
        self,
        script: str | Path,
        args: Sequence[str] = (),
        *,
        python: str | Path | None = None,
        group: str | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        cwd: str | Path | None = None,
        timeout: float | None = None,
        max_records: int | None = None,
        outputs: Sequence[str] | str = (),
        state_dir: str | Path | None = None,
    ) -> Job:
        """Start a Kafka application (a Quix Streams app, or any Kafka client) as a
        subprocess against this lab and return its :class:`~streamlab.front.jobs.Job` at
        once: ``job.status()``, ``job.wait(timeout=)``, ``job.stop(timeout=)``, ``job.kill()``,
        ``job.lag()``. ``script`` is a .py file or a module name (run with ``-m``), in
        ``python`` (default ``$STREAMLAB_JOBS_PYTHON``, else this interpreter; ``streamlab
        jobs setup DIR`` makes one with Quix Streams). Its environment gets
        ``STREAMLAB_BROKER`` (and ``Quix__Broker__Address``) = :meth:`serve`'s address, and
        with ``group`` ``STREAMLAB_GROUP`` (and ``Quix__Consumer_Group``), plus ``env``.
        ``timeout`` stops it after that many seconds, ``max_records`` once ``group`` has
        committed that many records (checked twice a second, so a few more may be read);
        :meth:`close` stops it too. ``outputs`` names the topics it writes (for
        ``job.metrics()``: records out, windows emitted). ``state_dir`` is where it keeps its
        state, passed as ``STREAMLAB_JOB_STATE_DIR`` and as the variable Quix's
        ``Application()`` reads when given none (its size is the metrics' state-store size;
        ``job.rerun(to="earliest")`` clears the group's part of it to reprocess, see
        :mod:`streamlab.front.reprocess`)."""
        from streamlab.front.jobs import JobSpec, start_job

        if self._closed:
            raise ClosedError("this lab is closed; connect again with streamlab.connect()")
        return start_job(self, JobSpec(script=script, args=args, python=python, group=group, env=env, name=name,
                                       cwd=cwd, timeout=timeout, max_records=max_records, outputs=outputs,
                                       state_dir=state_dir))  # fmt: skip

    def diff_topics(
        self,
        left: str,
        right: str,
        *,
        key: str | Sequence[str] = "key",
        columns: Sequence[str] | None = None,
        key_format: str = "auto",
        value_format: str = "auto",
    ) -> pd.DataFrame:
        """Compare two result topics (two runs of a job): the latest value per ``key`` (a
        column of :meth:`replay`, or several: ``["key", "start"]`` for a window per key) in
        each, and only the keys where they differ, with ``change`` "added" (only in
        ``right``), "removed" (only in ``left``) or "changed", and each compared column
        twice, suffixed by the topic (``"value@revenue.v1"``). ``columns`` are those compared
        (default: every decoded column but the key and the record's partition, offset and
        timestamp). ``key_format``/``value_format`` are :meth:`replay`'s. An empty frame
        means the two topics hold the same results."""
        from streamlab.front.diff import diff_frames

        old, new = (self.replay(t, key_format=key_format, value_format=value_format) for t in (left, right))
        return diff_frames(old, new, left=left, right=right, key=key, columns=columns)

    # history ----------------------------------------------------------------------------
    def start_history(
        self,
        interval: float = 5.0,
        *,
        topics: Iterable[str] | str | None = None,
        groups: Iterable[str] | str | None = None,
    ) -> None:
        """Sample end offsets, committed offsets and lag every ``interval`` seconds on a
        background thread (returns at once) until :meth:`stop_history` or :meth:`close`.
        Every topic and group unless ``topics``/``groups`` name them. An embedded lab keeps
        the samples in its catalog (they survive reopening); ``kafka://`` in memory."""
        self._sampler().start(interval, topics=check_names("topics", topics), groups=check_names("groups", groups))

    def stop_history(self) -> None:
        """Stop the sampling :meth:`start_history` started (the samples stay)."""
        self._sampler().stop()

    def sample_history(
        self, *, topics: Iterable[str] | str | None = None, groups: Iterable[str] | str | None = None, now: Any = None
    ) -> None:
        """Take one history sample now (``now`` sets its time: a datetime or ISO text)."""
        now_ms = None if now is None else to_ms(now, what="now")
        self._sampler().sample(topics=check_names("topics", topics), groups=check_names("groups", groups),
                               now_ms=now_ms)  # fmt: skip

    def lag_history(self, group: str) -> pd.DataFrame:
        """Per sample and partition: time, topic, partition, committed, end_offset, lag,
        time_lag and out_per_s (records/s the group committed since the previous sample)."""
        return self._sampler().lag_history(group)

    def throughput_history(self, topic: str, *, group: str | None = None) -> pd.DataFrame:
        """Per sample and partition: time, partition, log_start_offset, end_offset and
        in_per_s (records/s appended since the previous sample); with ``group``, also its
        committed offset, lag and out_per_s."""
        return self._sampler().throughput_history(topic, group)

    def _sampler(self) -> History:
        if self._history is None:
            self._history = History(self.backend)
        return self._history

    # lifecycle --------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (widgets check it before a button reaches the broker)."""
        return self._closed

    def close(self) -> None:
        """Close this lab (and, on Kafka, every producer and consumer it made), after
        stopping its Kafka endpoint if it serves one. Safe twice."""
        if not self._closed:
            self._closed = True
            if self._history is not None:
                self._history.stop()
            from streamlab.front.jobs import stop_jobs

            stop_jobs(self)  # a job must not outlive the endpoint it talks to
            try:
                self._endpoint.stop()
            finally:
                self.backend.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _committed(isolation_level: str) -> bool:
    if isolation_level not in ("read_committed", "read_uncommitted"):
        raise ConfigError(f"isolation_level must be 'read_committed' or 'read_uncommitted', got {isolation_level!r}")
    return isolation_level == "read_committed"


def _dotted(config: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(k).replace("_", "."): v for k, v in (config or {}).items()}


def _partitions(topic: str, partitions: Sequence[int] | int | None, count: int) -> list[int] | None:
    if partitions is None:
        return None
    chosen: list[int] = [partitions] if isinstance(partitions, int) else list(partitions)
    for p in chosen:
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < count:
            raise unknown_partition(topic, p, count)
    return chosen
