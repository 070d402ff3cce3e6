"""Fetch: records from each requested partition, with long polling.

The response is due once it holds ``min_bytes`` of records, once any partition has an
error, or after ``max_wait``. While waiting, nothing blocks the event loop: the fetch
sleeps on the server's :class:`~streamlab.server.context.DataSignal` and looks again when
the broker signals an append. Reading (:mod:`streamlab.broker.fetch`) and encoding run in a
worker thread.

Sizes follow Kafka (KIP-74): each partition gets at most ``partition_max_bytes`` and the
response at most ``max_bytes`` and the server's ``fetch.max.bytes`` (55 MB), except that
the first record of the first partition with data is returned whatever its size, so a
consumer can always make progress. The bytes a response may hold are leased from the
server's memory budget before anything is read (see :mod:`streamlab.server.memory`): when
memory is short a response is smaller, never late. Records are cut to the size wanted
before their columns are combined, so reading holds little more than the answer. Where
the wire Produce kept a producer's batch, it goes out as written (compressed, its producer
id and sequence; :mod:`streamlab.broker.batch_passthrough` says when); other records are
encoded as uncompressed v2 batches (offset gaps from compaction are kept). Records whose
key or value is stored as str or JSON carry the headers
``streamlab.key.format`` / ``streamlab.value.format`` again, so the ``kafka://`` backend
returns them as they were sent. Transaction markers go out as control batches, and
``isolation_level=read_committed`` reads up to the last stable offset without the records
of aborted transactions (see :mod:`streamlab.server.handlers._markers`). Fetch sessions
(KIP-227) are not offered: every response has session id 0, which tells clients to keep
sending full fetch requests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamlab.broker import batch_passthrough, fetch
from streamlab.errors import CorruptSegmentError, UnknownTopicError
from streamlab.model.serde import FMT_BYTES, FMT_NULL, KEY_FORMAT_HEADER, VALUE_FORMAT_HEADER, format_header
from streamlab.protocol.batch_columns import encode_batch_columns
from streamlab.protocol.batch_encoding import encode_headers
from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._markers import encode_with_markers
from streamlab.server.responses import ZERO, build, error_code, types_for
from streamlab.server.security import Operation, ResourceType

logger = logging.getLogger("streamlab.server")

API_KEY = 1

OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_AUTHORIZATION_FAILED = 29
FETCH_SESSION_ID_NOT_FOUND = 70
LEADER_EPOCH = 0
MAX_WAIT_S = 30.0  # a bound on one long poll, whatever a client asks for
MAX_RECORDS = 50_000  # per partition and response: bounds the work of one fetch
ZSTD_VERSION = 10  # the first Fetch version whose batches may be zstd-compressed (KIP-110)


@dataclass(slots=True)
class _Partition:
    index: int
    offset: int
    max_bytes: int
    error: int = 0
    high_watermark: int = -1
    last_stable: int = -1
    committed_only: bool = False  # isolation_level=read_committed: read up to last_stable
    log_start: int = -1
    records: bytes | memoryview = b""


def _locate(ctx: ServerContext, topic: str, p: _Partition) -> fetch.Bounds | None:
    """The partition's bounds, with ``p.error`` and its offsets filled in (cheap: no I/O);
    None when there is nothing to read from."""
    found = fetch.bounds(ctx.broker, ctx.transactions, topic, p.index)
    if found is None:
        p.error = UNKNOWN_TOPIC_OR_PARTITION
        return None
    p.log_start, p.high_watermark, p.last_stable = found.log_start, found.high_watermark, found.last_stable
    if not p.log_start <= p.offset <= p.high_watermark:
        p.error = OFFSET_OUT_OF_RANGE
        return None
    p.error = 0
    return found


def _header_sections(table: pa.Table) -> pa.Array | None:
    """Each record's encoded headers (stored ones, then the format headers), or None when
    no record has any: then nothing is done per record."""
    key_formats = table.column("key_format").to_numpy()
    value_formats = table.column("value_format").to_numpy()
    stored = table.column("headers")
    plain = (FMT_NULL, FMT_BYTES)
    formats = {*np.unique(key_formats).tolist(), *np.unique(value_formats).tolist()}
    if stored.null_count == table.num_rows and formats <= {*plain}:
        return None
    sections = []
    for hs, key_format, value_format in zip(
        stored.to_pylist(), key_formats.tolist(), value_formats.tolist(), strict=True
    ):
        headers: list[tuple[str, bytes | None]] = [(h["key"], h["value"]) for h in hs] if hs else []
        if key_format not in plain:
            headers.append((KEY_FORMAT_HEADER, format_header(key_format)))
        if value_format not in plain:
            headers.append((VALUE_FORMAT_HEADER, format_header(value_format)))
        sections.append(encode_headers(tuple(headers)) if headers else b"\x00")
    return pa.array(sections, pa.binary())


def encode_records(table: pa.Table, limit: int, at_least_one: bool, log_append_time: bool) -> bytes:
    """The records as one v2 batch, cut at ``limit`` bytes (the first record always fits
    when ``at_least_one``); encoded column by column (batch_columns.py)."""
    if table.num_rows == 0:
        return b""
    return encode_batch_columns(
        table.column("offset").to_numpy(),
        table.column("timestamp").to_numpy().view(np.int64),
        table.column("key"),
        table.column("value"),
        _header_sections(table),
        max_bytes=limit,
        at_least_one=at_least_one,
        partition_leader_epoch=LEADER_EPOCH,
        timestamp_type="log_append" if log_append_time else "create",
    )


def _fit(table: pa.Table, limit: int) -> pa.Table:
    """The leading records whose keys and values alone fit in ``limit`` (at least one): a
    zero-copy slice, so the encoder never copies what cannot be answered."""
    if table.num_rows <= 1:
        return table
    sizes = pc.add(
        pc.fill_null(pc.binary_length(table.column("key")), 0),
        pc.fill_null(pc.binary_length(table.column("value")), 0),
    )
    fits = int(np.searchsorted(np.cumsum(sizes.to_numpy()), limit, side="right"))
    return table.slice(0, max(fits, 1))


def _rows(
    ctx: ServerContext, topic: str, p: _Partition, found: fetch.Bounds, offset: int, stop: int, limit: int,
    at_least_one: bool,
) -> batch_passthrough.Chunk:  # fmt: skip
    """The partition's rows from ``offset`` to below ``stop``, encoded in at most ``limit`` bytes."""
    read = fetch.read(ctx.broker, ctx.transactions, topic, p.index, offset,
                      max_records=max(1, min(limit // 8, MAX_RECORDS)), end=found.end(p.committed_only),
                      committed_only=p.committed_only)  # fmt: skip
    table = _fit(batch_passthrough.rows_before(read, stop), limit)
    encode = functools.partial(encode_records, log_append_time=found.log_append_time)
    return batch_passthrough.chunk(table, encode_with_markers(table, limit, at_least_one, encode), offset, stop)


def _read(ctx: ServerContext, topics: list[tuple[str, list[_Partition]]], max_bytes: int, zstd: bool) -> int:
    """Fill every partition's records; returns the total bytes. ``zstd``: the request's
    version can carry zstd batches (v10+)."""
    total = 0
    for topic, partitions in topics:
        for p in partitions:
            p.records = b""
            found = _locate(ctx, topic, p)
            if found is None or p.offset >= found.end(p.committed_only) or total >= max_bytes:
                continue
            limit = min(p.max_bytes, max_bytes - total)
            rows = functools.partial(_rows, ctx, topic, p, found)
            try:  # the producers' batches where they are kept, else rows encoded (batch_passthrough.py)
                p.records = batch_passthrough.fill(
                    ctx.broker, ctx.transactions, topic, p.index, p.offset, end=found.end(p.committed_only),
                    limit=limit, at_least_one=total == 0, committed_only=p.committed_only, zstd=zstd, rows=rows,
                )  # fmt: skip
            except UnknownTopicError:  # deleted meanwhile
                p.error = UNKNOWN_TOPIC_OR_PARTITION
                continue
            except CorruptSegmentError as exc:
                # The records before the damage were served by earlier fetches; from here
                # on the client gets CORRUPT_MESSAGE for this partition, never altered data.
                logger.warning("%s[%d] at offset %d: %s", topic, p.index, p.offset, exc)
                p.error = exc.kafka_code
                continue
            total += len(p.records)
    return total


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    committed = getattr(body, "isolation_level", 0) == 1
    topics = [
        (topic.topic, [_Partition(p.partition, p.fetch_offset, p.partition_max_bytes, committed_only=committed)
                       for p in topic.partitions])
        for topic in body.topics
    ]  # fmt: skip
    # Topics the principal may not READ are answered TOPIC_AUTHORIZATION_FAILED, unread.
    denied = [item for item in topics if not ctx.authorize(conn, Operation.READ, ResourceType.TOPIC, item[0])]
    for _, parts in denied:
        for part in parts:
            part.error = TOPIC_AUTHORIZATION_FAILED
    topics = [item for item in topics if item not in denied]
    if getattr(body, "session_id", 0) != 0:  # we never hand out fetch sessions
        return build(t.FetchResponse, throttle_time=ZERO, error_code=error_code(FETCH_SESSION_ID_NOT_FOUND),
                     session_id=0, responses=())  # fmt: skip
    # v0-v2 have no response limit; fetch.max.bytes bounds every version
    max_bytes = min(getattr(body, "max_bytes", 2**31 - 1), ctx.limits.fetch_max_bytes)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(body.max_wait.total_seconds(), MAX_WAIT_S)
    leased = 0
    try:
        while True:
            generation = ctx.data.generation
            pending = [(topic, p) for topic, partitions in topics for p in partitions]
            located = [(p, _locate(ctx, topic, p)) for topic, p in pending]
            errors = bool(denied) or any(p.error for p, _ in located)
            has_data = any(found is not None and p.offset < found.end(p.committed_only) for p, found in located)
            total = 0
            if has_data:
                leased = ctx.memory.lease(max_bytes)
                total = await asyncio.to_thread(_read, ctx, topics, leased, request.api_version >= ZSTD_VERSION)
            remaining = deadline - loop.time()
            if errors or total >= body.min_bytes or remaining <= 0 or ctx.shutting_down:
                break
            for _, partitions in topics:  # too little yet: hold nothing while waiting
                for p in partitions:
                    p.records = b""
            ctx.memory.release(leased)
            leased = 0
            await ctx.data.wait(generation, remaining)
    finally:
        # From here the server counts the encoded response (server.connection), before anything else runs.
        ctx.memory.release(leased)
    answered = tuple(
        build(t.FetchableTopicResponse, topic=topic, partitions=tuple(_partition_data(t, p) for p in partitions))
        for topic, partitions in [*topics, *denied]
    )
    return build(t.FetchResponse, throttle_time=ZERO, error_code=error_code(0), session_id=0, responses=answered)


def _partition_data(t: Any, p: _Partition) -> Any:
    return build(
        t.PartitionData,
        partition_index=p.index,
        error_code=error_code(p.error),
        high_watermark=p.high_watermark,
        last_stable_offset=p.last_stable,
        log_start_offset=p.log_start,
        aborted_transactions=(),
        preferred_read_replica=-1,
        records=p.records,
    )
