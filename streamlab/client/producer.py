"""The producer: ``send`` one record, ``send_many`` a DataFrame.

``send`` serialises and validates in the caller's thread (bad input raises at once) and
queues the record; a sender thread takes whatever has queued, appends it per partition
and fsyncs once per partition before resolving the futures. Under load batches grow by
themselves, so one fsync covers many records (group commit) without any tuning.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from streamlab.broker import Broker
from streamlab.broker.produce import RECORD_OVERHEAD, append
from streamlab.client.frames import frame_rows
from streamlab.client.futures import RecordFuture, complete
from streamlab.client.timeparse import to_ms
from streamlab.errors import (
    ClosedError,
    ConfigError,
    OperationTimeoutError,
    RecordTooLargeError,
    UnknownPartitionError,
)
from streamlab.model.partitioner import PARTITIONERS, partition_for_key
from streamlab.model.serde import FMT_JSON, encode, encode_headers
from streamlab.model.types import RecordMetadata
from streamlab.storage.schema import build_batch

Acks = Literal["all", -1, 0, 1]
_Pending = tuple[
    str,
    int,
    int,
    bytes | None,
    int,
    bytes | None,
    int,
    list[tuple[str, bytes]] | None,
    Future[RecordMetadata],
]


class Producer:
    """Sends records to an embedded broker. Use as a context manager, or call :meth:`close`.

    ``acks="all"`` (default) acknowledges a record once it is fsynced; ``acks=1`` once it
    is written to the operating system (it survives a killed process, not a power cut);
    ``acks=0`` is treated like 1. ``linger_ms`` is how long the sender waits for more
    records before writing; ``batch_size`` is how many queued records wake it early.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        acks: Acks = "all",
        linger_ms: float = 5,
        batch_size: int = 10_000,
        partitioner: str = "murmur2",
        client_id: str = "streamlab-producer",
    ) -> None:
        if acks not in ("all", -1, 0, 1):
            raise ConfigError(f"acks must be 'all', -1, 0 or 1, got {acks!r}")
        if partitioner not in PARTITIONERS:
            raise ConfigError(f"partitioner must be one of {sorted(PARTITIONERS)}, got {partitioner!r}")
        self._broker = broker
        self._sync = acks in ("all", -1)
        self._linger = linger_ms / 1000
        self._batch_size = batch_size
        self._partitioner = PARTITIONERS[partitioner]()
        self.client_id = client_id
        self._pending: list[_Pending] = []
        self._in_flight = 0
        self._cv = threading.Condition()  # the queue: send() and flush() against the sender
        self._done = threading.Condition()  # shared by this producer's futures (futures.py)
        self._closed = False
        self._sender = threading.Thread(target=self._run, name=f"{client_id}-sender", daemon=True)
        self._sender.start()

    # sending ----------------------------------------------------------------------------
    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Mapping[str, str | bytes] | list[tuple[str, str | bytes]] | None = None,
        timestamp: Any = None,
        partition: int | None = None,
    ) -> Future[RecordMetadata]:
        """Queue one record; the future resolves to its :class:`RecordMetadata` once stored."""
        if self._closed:
            raise ClosedError("this producer is closed; create a new one with lab.producer()")
        state = self._broker.topic(topic)
        key_bytes, key_fmt = encode(key, what="key")
        value_bytes, value_fmt = encode(value)
        size = len(key_bytes or b"") + len(value_bytes or b"") + RECORD_OVERHEAD
        if size > state.config["max.message.bytes"]:
            raise RecordTooLargeError(
                f"record of {size} bytes exceeds max.message.bytes={state.config['max.message.bytes']} "
                f"of topic {topic!r}",
                topic=topic,
            )
        if partition is None:
            partition = self._partitioner(key_bytes, state.partitions)
        elif isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < state.partitions:
            raise UnknownPartitionError(
                f"topic {topic!r} has partitions 0..{state.partitions - 1}; there is no partition {partition!r}",
                topic=topic,
            )
        ts = int(time.time() * 1000) if timestamp is None else to_ms(timestamp)
        future: Future[RecordMetadata] = RecordFuture(self._done)
        item = (
            topic,
            partition,
            ts,
            key_bytes,
            key_fmt,
            value_bytes,
            value_fmt,
            encode_headers(headers),
            future,
        )
        with self._cv:
            self._pending.append(item)
            if len(self._pending) == 1 or len(self._pending) >= self._batch_size:
                self._cv.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if not self._pending and self._closed:
                    return
                if len(self._pending) < self._batch_size and not self._closed:
                    self._cv.wait(self._linger)  # linger: let a batch form
                batch, self._pending = self._pending, []
                self._in_flight += len(batch)
            try:
                self._write(batch)
            finally:
                with self._cv:
                    self._in_flight -= len(batch)
                    self._cv.notify_all()

    def _write(self, items: list[_Pending]) -> None:
        groups: dict[tuple[str, int], list[_Pending]] = defaultdict(list)
        for item in items:
            groups[(item[0], item[1])].append(item)
        for (topic, partition), group in groups.items():
            futures = [g[8] for g in group]
            try:
                batch = build_batch(
                    base_offset=0,
                    timestamps=[g[2] for g in group],
                    keys=[g[3] for g in group],
                    key_formats=[g[4] for g in group],
                    values=[g[5] for g in group],
                    value_formats=[g[6] for g in group],
                    headers=None if all(g[7] is None for g in group) else [g[7] for g in group],
                )
                base = append(self._broker, topic, partition, batch, sync=self._sync)
            except BaseException as exc:  # every waiter must hear about the failure
                for fut in futures:
                    fut.set_exception(exc)
                continue
            complete(
                self._done, futures, [RecordMetadata(topic, partition, base + i, g[2]) for i, g in enumerate(group)]
            )

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is stored (raises on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            self._cv.notify()
            while self._pending or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise OperationTimeoutError(
                        f"flush timed out with {len(self._pending) + self._in_flight} records still queued"
                    )
                self._cv.wait(left)

    # bulk -------------------------------------------------------------------------------
    def send_many(
        self,
        topic: str,
        df: pd.DataFrame,
        *,
        key: str | None = None,
        timestamp: str | None = None,
        partition: int | None = None,
        progress: bool | None = None,
        chunk_size: int = 100_000,
    ) -> pd.DataFrame:
        """One record per row of ``df``: ``key`` and ``timestamp`` name columns, the other
        columns become the JSON-object value. Returns, aligned with ``df``'s index, the
        ``partition`` and ``offset`` each row was stored at. Durable (per ``acks``) when it
        returns; validates every row before writing any."""
        if self._closed:
            raise ClosedError("this producer is closed; create a new one with lab.producer()")
        state = self._broker.topic(topic)
        n = len(df)
        frame = frame_rows(df, key=key, timestamp=timestamp)
        values, ts = frame.values, frame.timestamps
        keys, key_formats, parts = self._keys_and_partitions(df[key] if key is not None else None, n, state.partitions)
        if partition is not None:
            self._broker.log(topic, partition)
            parts = np.full(n, partition, dtype=np.int64)
        if frame.largest + RECORD_OVERHEAD > state.config["max.message.bytes"]:
            raise RecordTooLargeError(f"a row serialises to {frame.largest} bytes, over max.message.bytes", topic=topic)
        offsets = np.zeros(n, dtype=np.int64)
        show = progress if progress is not None else n >= 200_000
        from tqdm.auto import tqdm

        with tqdm(total=n, disable=not show, desc=f"send_many → {topic}", unit="rec") as bar:
            for p in np.unique(parts):
                rows = np.flatnonzero(parts == p)
                for start in range(0, len(rows), chunk_size):
                    chunk = rows[start : start + chunk_size]
                    idx = pa.array(chunk)
                    batch = build_batch(
                        base_offset=0,
                        timestamps=pa.array(ts[chunk]),
                        keys=keys.take(idx),
                        key_formats=key_formats.take(idx),
                        values=values.take(idx),
                        value_formats=pa.array(np.full(len(chunk), FMT_JSON, dtype=np.int8)),
                    )
                    last = start + chunk_size >= len(rows)
                    base = append(self._broker, topic, int(p), batch, sync=self._sync and last)
                    offsets[chunk] = np.arange(base, base + len(chunk))
                    bar.update(len(chunk))
        return pd.DataFrame({"partition": parts.astype(np.int32), "offset": offsets}, index=df.index)

    def _keys_and_partitions(
        self, column: pd.Series | None, n: int, partitions: int
    ) -> tuple[pa.Array, pa.Array, np.ndarray]:
        if column is None:
            parts = np.array([self._partitioner(None, partitions) for _ in range(n)], dtype=np.int64)
            return pa.nulls(n, pa.binary()), pa.array(np.zeros(n, dtype=np.int8)), parts
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        encoded = [encode(None if pd.isna(u) else u, what="key") for u in uniques]
        unique_parts = np.array(
            [self._partitioner(b, partitions) if b is not None else 0 for b, _ in encoded] + [0],
            dtype=np.int64,
        )
        code_index = pa.array(np.where(codes < 0, len(uniques), codes))
        key_values = pa.array([b for b, _ in encoded] + [None], pa.binary()).take(code_index)
        key_formats = pa.array([f for _, f in encoded] + [0], pa.int8()).take(code_index)
        parts = unique_parts[np.where(codes < 0, len(uniques), codes)]
        if (codes < 0).any():  # rows without a key are spread like unkeyed sends
            parts[codes < 0] = [self._partitioner(None, partitions) for _ in range(int((codes < 0).sum()))]
        return key_values, key_formats, parts

    # lifecycle --------------------------------------------------------------------------
    def close(self, timeout: float | None = 30) -> None:
        """Send what is queued, then stop. Safe to call twice."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            with self._cv:
                self._closed = True
                self._cv.notify_all()
            self._sender.join(timeout)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Producer", "partition_for_key"]
