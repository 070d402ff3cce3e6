"""Produce: decode record batches, check them, store them, acknowledge per ``acks``.

* ``acks=-1`` ("all") answers after the data is fsynced, ``acks=1`` after it is written
  to the operating system; ``acks=0`` gets no response at all, and if storing failed the
  connection is closed, as Kafka does, so the client notices and refreshes its metadata.
* Every batch's CRC-32C is checked (CORRUPT_MESSAGE). A batch larger than the topic's
  ``max.message.bytes`` gets MESSAGE_TOO_LARGE. A transactional batch is checked against
  its transaction (fenced epoch, partition not added) and noted in the transaction index
  (:mod:`streamlab.broker.transactions`) before it is stored.
* Keys and values are stored as bytes (``FMT_BYTES``; ``FMT_NULL`` for null), except
  that the headers ``streamlab.key.format`` / ``streamlab.value.format`` (one ASCII digit,
  a :mod:`streamlab.model.serde` format code), which streamlab's ``kafka://`` backend sends,
  set the stored format and are removed; Fetch puts them back.
* Records with no timestamp (-1) get the broker's time; so do all records of a topic with
  ``message.timestamp.type=LogAppendTime``.
* Batches from idempotent producers go through :mod:`streamlab.broker.producer_state`.
"""

from __future__ import annotations

import itertools
import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from streamlab.broker import batch_passthrough, produce
from streamlab.broker.produce import sync_all
from streamlab.errors import CorruptRecordError, RecordTooLargeError, SerializationError, StreamlabError
from streamlab.model.schema import build_batch
from streamlab.model.serde import FMT_BYTES, FMT_JSON, FMT_NULL, KEY_FORMAT_HEADER, VALUE_FORMAT_HEADER, header_format
from streamlab.protocol.batch_columns import RecordColumns, decode_batches_columns
from streamlab.protocol.framing import ParsedRequest
from streamlab.protocol.produce_codec import PartitionAnswer, encode_produce_response
from streamlab.protocol.record_batch import RecordBatch, WireRecord
from streamlab.server.context import CloseConnection, ConnectionInfo, Deferred, Encoded, ServerContext
from streamlab.server.responses import error_code, error_of
from streamlab.server.security import Operation, ResourceType

API_KEY = 0

_BATCH_LENGTH = struct.Struct(">i")
INVALID_REQUIRED_ACKS = 21
TOPIC_AUTHORIZATION_FAILED = 29
INVALID_REQUEST = 42
KAFKA_STORAGE_ERROR = 56

log = logging.getLogger(__name__)


class _Unsupported(StreamlabError):
    kafka_code = INVALID_REQUEST


@dataclass(frozen=True, slots=True)
class _Result:
    code: int
    base_offset: int = -1
    log_start_offset: int = -1
    log_append_time_ms: int | None = None
    message: str | None = None


def _format(raw: bytes | None, data: bytes | None, name: str) -> int:
    if data is None:
        return FMT_NULL
    code = header_format(raw)
    if code is None or code == FMT_NULL:
        raise SerializationError(f"header {name} must be one ASCII digit 1-{FMT_JSON}, got {raw!r}")
    return code


def to_arrow(records: Sequence[WireRecord], now_ms: int, log_append_time: bool) -> pa.RecordBatch:
    """Wire records as a stored batch (offsets are assigned by the log)."""
    timestamps, keys, key_formats, values, value_formats = [], [], [], [], []
    headers: list[list[tuple[str, bytes | None]] | None] = []
    for record in records:
        key_format = FMT_NULL if record.key is None else FMT_BYTES
        value_format = FMT_NULL if record.value is None else FMT_BYTES
        kept: list[tuple[str, bytes | None]] | None = None
        if record.headers:
            kept = []
            for name, value in record.headers:
                if name == KEY_FORMAT_HEADER:
                    key_format = _format(value, record.key, name)
                elif name == VALUE_FORMAT_HEADER:
                    value_format = _format(value, record.value, name)
                else:
                    kept.append((name, value))
        timestamps.append(now_ms if log_append_time or record.timestamp < 0 else record.timestamp)
        keys.append(record.key)
        key_formats.append(key_format)
        values.append(record.value)
        value_formats.append(value_format)
        headers.append(kept or None)
    return build_batch(
        base_offset=0,
        timestamps=timestamps,
        keys=keys,
        key_formats=key_formats,
        values=values,
        value_formats=value_formats,
        headers=None if all(h is None for h in headers) else headers,
    )


def columns_to_arrow(columns: RecordColumns, now_ms: int, log_append_time: bool) -> pa.RecordBatch:
    """Columns of records without headers as a stored batch (bytes keys and values)."""
    n = len(columns)
    timestamps = columns.timestamps
    timestamps = np.full(n, now_ms, dtype=np.int64) if log_append_time else np.where(timestamps < 0, now_ms, timestamps)
    key_formats = np.full(n, FMT_BYTES, dtype=np.int8)
    if columns.keys.null_count:
        key_formats[np.asarray(columns.keys.is_null())] = FMT_NULL
    value_formats = np.full(n, FMT_BYTES, dtype=np.int8)
    if columns.values.null_count:
        value_formats[np.asarray(columns.values.is_null())] = FMT_NULL
    return build_batch(
        base_offset=0,
        timestamps=timestamps,
        keys=columns.keys,
        key_formats=key_formats,
        values=columns.values,
        value_formats=value_formats,
    )


def _batch_sizes(data: bytes) -> list[int]:
    sizes, pos = [], 0
    while pos + 12 <= len(data):
        size = 12 + _BATCH_LENGTH.unpack_from(data, pos + 8)[0]
        sizes.append(size)
        pos += size
    return sizes


def _producer(batch: RecordBatch) -> produce.ProducerBatch | None:
    """Who sent ``batch``, if an idempotent producer did (its sequence is then checked)."""
    if batch.producer_id < 0 or batch.base_sequence < 0:
        return None
    last = (batch.base_sequence + batch.last_offset_delta) % 2**31
    return produce.ProducerBatch(
        batch.producer_id, batch.producer_epoch, batch.base_sequence, last, batch.is_transactional
    )


_Sync = Callable[[], None]


def _produce_partition(
    ctx: ServerContext, topic: str, partition: int, data: bytes | None
) -> tuple[_Result, set[_Sync]]:
    """Decode, check and append one partition's batches; the result, and the syncs that make
    them durable (also for a dropped retry: its original may not be durable yet)."""
    syncs: set[_Sync] = set()
    try:
        log_start = produce.log_start_offset(ctx.broker, topic, partition)  # raises if there is no such partition
        config = ctx.broker.topic(topic).config
        if not data:
            raise CorruptRecordError("the request carries no record batch", topic=topic, partition=partition)
        batches = decode_batches_columns(data, verify_crc=True, allow_truncated=False)
        limit = config["max.message.bytes"]
        sizes = _batch_sizes(data)
        for size in sizes:
            if size > limit:
                raise RecordTooLargeError(f"a batch of {size} bytes exceeds max.message.bytes={limit} of {topic!r}")
        log_append_time = config["message.timestamp.type"] == "LogAppendTime"
        now_ms = int(time.time() * 1000)
        first: int | None = None
        for decoded, start, size in zip(batches, itertools.accumulate(sizes, initial=0), sizes, strict=False):
            batch = decoded.batch
            if batch.is_control:  # markers are the coordinator's to write
                raise _Unsupported("clients may not write control batches")
            if batch.is_transactional and (batch.producer_id < 0 or batch.base_sequence < 0):
                raise _Unsupported("a transactional batch needs a producer id and sequence numbers")
            if not len(decoded):
                continue
            if decoded.columns is None:
                rows = to_arrow(batch.records, now_ms, log_append_time)
            else:
                rows = columns_to_arrow(decoded.columns, now_ms, log_append_time)
            stored = produce.append_from_producer(
                ctx.broker, topic, partition, rows,
                producer=_producer(batch), producers=ctx.producers, transactions=ctx.transactions,
                wire=batch_passthrough.wire_batch(data, start, size, decoded, config),
            )  # fmt: skip
            syncs.update(stored.syncs)
            first = stored.base_offset if first is None else first
            log_start = stored.log_start_offset
        return _Result(0, -1 if first is None else first, log_start, now_ms if log_append_time else None), syncs
    except StreamlabError as exc:
        return _Result(error_of(exc).value, message=str(exc)), syncs
    except OSError as exc:
        log.error("storing to %s[%d] failed: %s", topic, partition, exc)
        return _Result(KAFKA_STORAGE_ERROR, message=str(exc)), syncs


_Appended = list[tuple[str, list[tuple[int, _Result, set[_Sync]]]]]  # per topic: partition, result, its syncs
_Answers = list[tuple[str, list[tuple[int, _Result]]]]


def _append_all(ctx: ServerContext, body: Any, denied: frozenset[str]) -> _Appended:
    """Append every partition in request order."""
    results: _Appended = []
    for topic in body.topic_data:
        parts: list[tuple[int, _Result, set[_Sync]]] = []
        for p in topic.partition_data:
            if topic.name in denied:  # no WRITE on the topic
                parts.append((p.index, _Result(TOPIC_AUTHORIZATION_FAILED), set()))
                continue
            result, syncs = _produce_partition(ctx, topic.name, p.index, p.records)
            parts.append((p.index, result, syncs))
        results.append((topic.name, parts))
    return results


def _made_durable(results: _Appended) -> _Answers:
    """Fsync what ``results`` appended, then the answers: a partition whose log or the
    producer-state file failed to sync gets KAFKA_STORAGE_ERROR.

    The partition logs and the producer-state file are fsynced in parallel, each in a
    round shared with every concurrent request that appended to the same file (group
    commit, see storage/append_file.py), so a busy server does one fsync per file per round
    instead of one per partition per request, one after another.
    """
    # A log's (or the state file's) sync is one bound method however often it was noted.
    syncs = list(dict.fromkeys(sync for _, parts in results for _, _, noted in parts for sync in noted))
    failed = {sync: exc for sync, exc in zip(syncs, sync_all(syncs), strict=True) if exc is not None}
    return _answers(results, failed)


def _answers(results: _Appended, failed: dict[_Sync, BaseException]) -> _Answers:
    out = []
    for name, parts in results:
        answered = []
        for index, result, noted in parts:
            error = next((failed[sync] for sync in noted if sync in failed), None)
            if error is not None and result.code == 0:
                log.error("syncing %s[%d] failed: %s", name, index, error)
                result = _Result(KAFKA_STORAGE_ERROR, message=str(error))
            answered.append((index, result))
        out.append((name, answered))
    return out


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    if body.acks not in (-1, 0, 1):
        invalid = [
            (t.name, [(p.index, _Result(INVALID_REQUIRED_ACKS)) for p in t.partition_data]) for t in body.topic_data
        ]
        return _response(request, invalid)
    denied = frozenset(
        t.name for t in body.topic_data if not ctx.authorize(conn, Operation.WRITE, ResourceType.TOPIC, t.name)
    )
    acks = body.acks

    def append() -> _Appended:
        return _append_all(ctx, body, denied)

    def answers(appended: _Appended) -> _Answers:
        return _made_durable(appended) if acks == -1 else _answers(appended, {})

    # Appending (and with acks=-1 fsyncing) blocks: off the event loop, in the connection's
    # lane, which stores its requests in order and lets the waiting ones share a turn.
    stored = conn.lane.run(append, answers)

    async def answer() -> Any:
        results: _Answers = await stored
        if acks == 0:
            if any(r.code for _, parts in results for _, r in parts):
                raise CloseConnection("a Produce with acks=0 failed")
            return None
        return _response(request, results)

    # The server reads (and queues) the connection's next Produce meanwhile (see Deferred).
    return Deferred(answer())


def _response(request: ParsedRequest, results: _Answers) -> Encoded:
    topics = [(name, [_answer(i, r) for i, r in parts]) for name, parts in results]
    return Encoded(encode_produce_response(request.api_version, request.correlation_id, topics))


def _answer(index: int, r: _Result) -> PartitionAnswer:
    appended_at = -1 if r.log_append_time_ms is None else r.log_append_time_ms
    code = int(error_code(r.code))  # a code kio does not know becomes UNKNOWN_SERVER_ERROR
    return PartitionAnswer(index, code, r.base_offset, appended_at, r.log_start_offset, r.message)
