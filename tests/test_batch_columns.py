"""The columnar record batch codec agrees with the record-by-record one (record_batch.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab.errors import CorruptRecordError
from streamlab.protocol import batch_columns
from streamlab.protocol.batch_columns import decode_batches_columns, encode_batch_columns
from streamlab.protocol.batch_encoding import encode_batch, encode_headers
from streamlab.protocol.record_batch import WireRecord, decode_batches

blobs = st.one_of(st.none(), st.binary(max_size=300))
records = st.lists(
    st.tuples(blobs, blobs, st.integers(-(2**40), 2**40), st.integers(1, 70_000)), min_size=1, max_size=40
)


def as_wire(rows: list[tuple[bytes | None, bytes | None, int, int]], headers: bool = False) -> list[WireRecord]:
    out, offset = [], 0
    for i, (key, value, ts, gap) in enumerate(rows):
        offset += gap if i else 0
        extra = (("h", b"x"),) if headers and i % 2 else ()
        out.append(WireRecord(offset, 1_700_000_000_000 + ts, key, value, extra))
    return out


def columns_as_records(data: bytes, verify_crc: bool = True) -> list[tuple[WireRecord, ...]]:
    out = []
    for cb in decode_batches_columns(data, verify_crc=verify_crc, allow_truncated=False):
        if cb.columns is None:
            out.append(cb.batch.records)
            continue
        c, b = cb.columns, cb.batch
        rows = []
        keys, values = c.keys.to_pylist(), c.values.to_pylist()
        for i in range(len(c)):
            offset = b.base_offset + int(c.offset_deltas[i])
            rows.append(WireRecord(offset, int(c.timestamps[i]), keys[i], values[i]))
        out.append(tuple(rows))
    return out


@pytest.fixture(autouse=True)
def columnar_from_one_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_columns, "COLUMNAR_MIN_RECORDS", 1)
    monkeypatch.setattr(batch_columns, "COLUMNAR_ENCODE_MIN_RECORDS", 1)


@settings(max_examples=150, deadline=None)
@given(
    rows=records,
    compression=st.sampled_from(["none", "gzip", "snappy", "lz4", "zstd"]),
    timestamp_type=st.sampled_from(["create", "log_append"]),
    headers=st.booleans(),
)
def test_columns_match_records(rows: list, compression: str, timestamp_type: str, headers: bool) -> None:
    wire = as_wire(rows, headers)
    data = encode_batch(wire, base_offset=0, compression=compression, timestamp_type=timestamp_type)  # type: ignore[arg-type]
    data += encode_batch(wire[:1], base_offset=0, producer_id=3, producer_epoch=1, base_sequence=7)
    expected = decode_batches(data, allow_truncated=False)
    got = decode_batches_columns(data, allow_truncated=False)
    assert columns_as_records(data) == [b.records for b in expected]
    assert [(g.batch.base_offset, g.batch.producer_id, g.batch.base_sequence, len(g)) for g in got] == [
        (b.base_offset, b.producer_id, b.base_sequence, len(b.records)) for b in expected
    ]
    assert (got[0].columns is None) == (headers and len(wire) > 1)


def test_corrupt_data_raises_like_the_record_reader() -> None:
    data = bytearray(encode_batch(as_wire([(b"k", b"v", 0, 1)] * 3)))
    data[-2] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        decode_batches_columns(bytes(data))
    assert len(decode_batches_columns(bytes(data), verify_crc=False)) == 1
    whole = encode_batch(as_wire([(b"k", b"v", 0, 1)] * 3))
    with pytest.raises(CorruptRecordError):
        decode_batches_columns(whole[:-3], allow_truncated=False)
    assert decode_batches_columns(whole[:-3]) == []


def test_columns_are_arrow_binary_arrays() -> None:
    [cb] = decode_batches_columns(encode_batch(as_wire([(b"ab", None, 0, 1), (None, b"xyz", 5, 1)])))
    assert cb.columns is not None
    assert cb.columns.keys.type == pa.binary() and cb.columns.keys.to_pylist() == [b"ab", None]
    assert cb.columns.values.null_count == 1 and cb.columns.values.to_pylist() == [None, b"xyz"]
    assert list(cb.columns.timestamps) == [1_700_000_000_000, 1_700_000_000_005]


@settings(max_examples=150, deadline=None)
@given(rows=records, timestamp_type=st.sampled_from(["create", "log_append"]), headers=st.booleans())
def test_encoding_columns_writes_what_encode_batch_writes(rows: list, timestamp_type: str, headers: bool) -> None:
    wire = as_wire(rows, headers)
    sections = pa.array([encode_headers(r.headers) if r.headers else b"\x00" for r in wire], pa.binary())
    got = encode_batch_columns(
        np.array([r.offset for r in wire]) + 7,
        np.array([r.timestamp for r in wire]),
        pa.array([r.key for r in wire], pa.binary()),
        pa.array([r.value for r in wire], pa.binary()),
        sections if headers else None,
        partition_leader_epoch=0,
        timestamp_type=timestamp_type,  # type: ignore[arg-type]
    )
    moved = [WireRecord(r.offset + 7, r.timestamp, r.key, r.value, r.headers) for r in wire]
    assert got == encode_batch(moved, base_offset=7, partition_leader_epoch=0, timestamp_type=timestamp_type)  # type: ignore[arg-type]


def test_encoding_columns_stops_at_max_bytes() -> None:
    wire = as_wire([(b"k", b"v" * 1000, 0, 1)] * 10)
    columns = (
        np.array([r.offset for r in wire]),
        np.array([r.timestamp for r in wire]),
        pa.array([r.key for r in wire], pa.binary()),
        pa.array([r.value for r in wire], pa.binary()),
    )
    [some] = decode_batches(encode_batch_columns(*columns, max_bytes=3500))
    assert len(some.records) == 3 and some.records == tuple(wire[:3])
    [one] = decode_batches(encode_batch_columns(*columns, max_bytes=10))
    assert one.records == (wire[0],)
    assert encode_batch_columns(*columns, max_bytes=10, at_least_one=False) == b""


@settings(max_examples=100, deadline=None)
@given(rows=records, timestamp_type=st.sampled_from(["create", "log_append"]), headers=st.booleans(),
       limit=st.one_of(st.none(), st.integers(0, 20_000)), at_least_one=st.booleans())  # fmt: skip
def test_few_records_are_written_as_the_columnar_writer_writes_them(
    rows: list, timestamp_type: str, headers: bool, limit: int | None, at_least_one: bool
) -> None:
    """Below COLUMNAR_ENCODE_MIN_RECORDS records are written one by one from views of the
    columns (chunked and sliced ones too): the same bytes, cut at the same record."""
    wire = as_wire(rows, headers)
    sections = pa.array([encode_headers(r.headers) if r.headers else b"\x00" for r in wire], pa.binary())
    keys = [r.key for r in wire]
    values = [r.value for r in wire]
    half = len(wire) // 2
    chunked_values = pa.chunked_array(
        [pa.array([b"x", *values[:half]], pa.binary()).slice(1), pa.array(values[half:], pa.binary())], pa.binary()
    )
    args = (np.array([r.offset for r in wire]), np.array([r.timestamp for r in wire]))
    batch_columns.COLUMNAR_ENCODE_MIN_RECORDS = 1  # each example sets both; the fixture restores it
    options = dict(max_bytes=limit, at_least_one=at_least_one, partition_leader_epoch=0, timestamp_type=timestamp_type)
    columnar = encode_batch_columns(*args, pa.array(keys, pa.binary()), pa.array(values, pa.binary()),
                                    sections if headers else None, **options)  # type: ignore[arg-type]  # fmt: skip
    batch_columns.COLUMNAR_ENCODE_MIN_RECORDS = 10**9
    few = encode_batch_columns(*args, pa.chunked_array([pa.array(keys, pa.binary())]), chunked_values,
                               sections if headers else None, **options)  # type: ignore[arg-type]  # fmt: skip
    assert few == columnar


def _records_section(data: bytes) -> tuple[np.ndarray, int, int, int]:
    """The batch's bytes as numpy, where its records start and end, and how many there are."""
    count = int.from_bytes(data[57:61], "big")
    return np.frombuffer(data, dtype=np.uint8), 61, len(data), count


# Keys and values with no zero bytes, from a few bytes to a few hundred: records whose
# boundaries are found without walking them one by one.
zero_free = st.binary(min_size=1, max_size=400).map(lambda b: b.replace(b"\x00", b"\x01"))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.none(), zero_free), zero_free), min_size=1, max_size=60))
def test_record_boundaries_are_found_without_a_walk(rows: list[tuple[bytes | None, bytes]]) -> None:
    wire = [WireRecord(i, 1_700_000_000_000 + 1000 * i, k, v) for i, (k, v) in enumerate(rows)]
    data = encode_batch(wire, base_offset=0)
    arr, pos, end, count = _records_section(data)
    guessed = batch_columns._guessed_starts(data, arr, pos, end, count)
    assert guessed is not None
    assert np.array_equal(guessed, batch_columns._walked_starts(data, pos, end, count))


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(blobs, blobs), min_size=1, max_size=40),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
    headers=st.booleans(),
)
def test_damaged_records_decode_as_the_record_reader_decodes_them(
    rows: list[tuple[bytes | None, bytes | None]], flips: list[tuple[int, int]], headers: bool
) -> None:
    """Bytes changed inside the records (CRC not checked): the boundary guess is exact or
    refused, so the columns hold what the record reader reads, or both refuse the batch."""
    wire = as_wire([(k, v, 0, 1) for k, v in rows], headers)
    data = bytearray(encode_batch(wire, base_offset=0))
    for at, xor in flips:
        data[61 + at % (len(data) - 61)] ^= xor
    damaged = bytes(data)
    arr, pos, end, count = _records_section(damaged)
    guessed = batch_columns._guessed_starts(damaged, arr, pos, end, count)
    if guessed is not None:
        assert np.array_equal(guessed, batch_columns._walked_starts(damaged, pos, end, count))
    try:
        expected = [b.records for b in decode_batches(damaged, verify_crc=False, allow_truncated=False)]
    except CorruptRecordError:
        with pytest.raises(CorruptRecordError):
            decode_batches_columns(damaged, verify_crc=False, allow_truncated=False)
        return
    assert columns_as_records(damaged, verify_crc=False) == expected
