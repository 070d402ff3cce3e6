"""RecordBatch v2 codec: round trips, kafka-python interop, corruption and truncation."""

from __future__ import annotations

import contextlib
import struct
import types
import warnings
from collections.abc import Iterator
from dataclasses import replace
from unittest import mock

import cramjam
import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab.errors import CorruptRecordError, SerializationError
from streamlab.protocol.batch_encoding import encode_batch
from streamlab.protocol.batch_layout import REBASED_HEAD_SIZE, rebase, rebased_head
from streamlab.protocol.record_batch import RecordBatch, WireRecord, decode_batches

# kafka-python loads its protocol schemas with the deprecated importlib.resources.read_text
# at import time, which pytest's filterwarnings=error would turn into a collection error.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.codec
    from kafka.record import default_records
    from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
    from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
KAFKA_PYTHON_CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
HEADER_SIZE = 61
CRC_START = 21  # the CRC covers attributes..end


# --- strategies -------------------------------------------------------------------------

headers_st = st.lists(st.tuples(st.text(max_size=12), st.none() | st.binary(max_size=100)), max_size=4).map(tuple)
# Timestamps within 2**61 of zero keep every delta inside the int64 varlong range.
timestamps_st = st.integers(-(2**61), 2**61)
keys_st = st.none() | st.binary(max_size=80)
values_st = st.none() | st.binary(max_size=300)


@st.composite
def record_lists(draw: st.DrawFn, min_size: int = 1, max_size: int = 25) -> tuple[int, list[WireRecord]]:
    """(base_offset, records) with strictly increasing offsets that may have gaps."""
    base = draw(st.integers(0, 2**40))
    count = draw(st.integers(min_size, max_size))
    gaps = draw(st.lists(st.integers(1, 20_000), min_size=count, max_size=count))
    first_gap = draw(st.integers(0, 3))
    first_ts = draw(timestamps_st)
    records = []
    offset = base + first_gap
    for i in range(count):
        if i:
            offset += gaps[i]
        # The strategies are built once, at import: building them on every draw cost more
        # than drawing from them.
        records.append(
            WireRecord(
                offset=offset,
                timestamp=draw(timestamps_st) if draw(st.booleans()) else first_ts,
                key=draw(keys_st),
                value=draw(values_st),
                headers=draw(headers_st),
            )
        )
    return base, records


# --- helpers ----------------------------------------------------------------------------


def recrc(batch: bytes | bytearray) -> bytes:
    """Recompute the CRC so a deliberately malformed body reaches the record parser."""
    out = bytearray(batch)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[CRC_START:])))
    return bytes(out)


def _lz4_frame(data: bytes) -> bytes:
    compressor = cramjam.lz4.Compressor(block_linked=False, content_checksum=False)
    compressor.compress(data)
    return bytes(compressor.finish())


@contextlib.contextmanager
def kafka_python_codecs() -> Iterator[None]:
    """Give kafka-python's batch code the codecs this venv lacks, backed by cramjam.

    Only the compression primitives are substituted: kafka-python's own framing (xerial
    snappy blocks, attribute bits, whole-records-section compression) is what is tested.
    """
    snappy_shim = types.SimpleNamespace(
        compress=lambda data: bytes(cramjam.snappy.compress_raw(data)),
        decompress=lambda data: bytes(cramjam.snappy.decompress_raw(data)),
    )
    with contextlib.ExitStack() as stack:
        if not kafka.codec.has_snappy():
            stack.enter_context(mock.patch.object(kafka.codec, "snappy", snappy_shim))
        if not kafka.codec.has_lz4():
            stack.enter_context(mock.patch.object(kafka.codec, "lz4", object()))
            stack.enter_context(mock.patch.object(default_records, "lz4_encode", _lz4_frame))
            stack.enter_context(
                mock.patch.object(default_records, "lz4_decode", lambda d: bytes(cramjam.lz4.decompress(d)))
            )
        if not kafka.codec.has_zstd():
            stack.enter_context(mock.patch.object(kafka.codec, "zstd", object()))
            stack.enter_context(
                mock.patch.object(default_records, "zstd_encode", lambda d: bytes(cramjam.zstd.compress(d)))
            )
            stack.enter_context(
                mock.patch.object(default_records, "zstd_decode", lambda d: bytes(cramjam.zstd.decompress(d)))
            )
        yield


def native_kafka_python_codecs() -> list[str]:
    checks = {
        "none": True,
        "gzip": kafka.codec.has_gzip(),
        "snappy": kafka.codec.has_snappy(),
        "lz4": kafka.codec.has_lz4(),
        "zstd": kafka.codec.has_zstd(),
    }
    return [name for name, ok in checks.items() if ok]


def kafka_python_build(
    records: list[WireRecord],
    codec: str,
    *,
    base_offset: int = 0,
    producer: tuple[int, int, int] = (-1, -1, -1),
    transactional: bool = False,
) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=KAFKA_PYTHON_CODEC_IDS[codec],
        is_transactional=transactional,
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=producer[2],
        batch_size=1 << 30,
    )
    for record in records:
        assert builder.append(
            record.offset - base_offset, record.timestamp, record.key, record.value, list(record.headers)
        )
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base_offset)  # outside the CRC, as a broker would assign it
    return bytes(data)


def assert_matches_kafka_python(batch: RecordBatch, data: bytes) -> None:
    ref = DefaultRecordBatch(bytearray(data))
    assert ref.validate_crc()
    assert (batch.base_offset, batch.last_offset_delta) == (ref.base_offset, ref.last_offset_delta)
    assert (batch.base_timestamp, batch.max_timestamp) == (ref.first_timestamp, ref.max_timestamp)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (
        ref.producer_id,
        ref.producer_epoch,
        ref.base_sequence,
    )
    assert batch.is_transactional == ref.is_transactional
    assert batch.crc == ref.crc
    ours = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch.records]
    theirs = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in ref]
    assert ours == theirs


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("compression", CODECS)
@settings(max_examples=60, deadline=None)
@given(data=record_lists(), transactional=st.booleans(), producer_id=st.integers(0, 2**40))
def test_round_trip(
    compression: str, data: tuple[int, list[WireRecord]], transactional: bool, producer_id: int
) -> None:
    base, records = data
    encoded = encode_batch(
        records,
        base_offset=base,
        compression=compression,  # type: ignore[arg-type]
        producer_id=producer_id,
        producer_epoch=3,
        base_sequence=17,
        partition_leader_epoch=5,
        transactional=transactional,
    )
    [batch] = decode_batches(encoded)
    assert batch.records == tuple(records)
    assert batch.base_offset == base
    assert batch.last_offset == records[-1].offset
    assert batch.base_timestamp == records[0].timestamp
    assert batch.max_timestamp == max(r.timestamp for r in records)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (producer_id, 3, 17)
    assert batch.partition_leader_epoch == 5
    assert batch.magic == 2
    assert batch.compression == compression
    assert batch.is_transactional is transactional
    assert batch.is_control is False
    assert batch.timestamp_type == "create"
    assert batch.attributes & 0x07 == CODECS.index(compression)


@given(data=record_lists(max_size=5))
@settings(max_examples=30, deadline=None)
def test_log_append_time_overrides_record_timestamps(data: tuple[int, list[WireRecord]]) -> None:
    base, records = data
    [batch] = decode_batches(encode_batch(records, base_offset=base, timestamp_type="log_append"))
    assert batch.timestamp_type == "log_append"
    assert all(r.timestamp == batch.max_timestamp for r in batch.records)
    assert [replace(r, timestamp=0) for r in batch.records] == [replace(r, timestamp=0) for r in records]


def test_large_fields_take_multi_byte_varint_paths() -> None:
    records = [
        WireRecord(0, -(2**61), b"k" * 70_000, None, tuple((f"h{i}", b"v" * 200) for i in range(100))),
        WireRecord(1_000_000, 2**62, None, b"x" * 20_000),
        WireRecord(2**31 - 1, 0, b"", b""),
    ]
    for compression in CODECS:
        encoded = encode_batch(records, compression=compression)  # type: ignore[arg-type]
        assert decode_batches(encoded)[0].records == tuple(records)


def test_several_batches_and_input_buffer_types() -> None:
    first = encode_batch([WireRecord(0, 1, b"a", b"b")], compression="gzip")
    second = encode_batch([WireRecord(7, 2, None, b"c"), WireRecord(9, 3, None, None)], base_offset=7)
    data = first + second
    for view in (data, bytearray(data), memoryview(data)):
        batches = decode_batches(view)
        assert [b.base_offset for b in batches] == [0, 7]
        assert [r.offset for b in batches for r in b.records] == [0, 7, 9]
    assert decode_batches(b"") == []


def test_control_batch_flag_is_decoded() -> None:
    encoded = bytearray(encode_batch([WireRecord(0, 1, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00")]))
    struct.pack_into(">h", encoded, 21, 0x20 | 0x10)
    [batch] = decode_batches(recrc(encoded))
    assert batch.is_control and batch.is_transactional


# --- interop with kafka-python ----------------------------------------------------------


@pytest.mark.parametrize("compression", CODECS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=record_lists(max_size=15), transactional=st.booleans())
def test_kafka_python_batches_decode(compression: str, data: tuple[int, list[WireRecord]], transactional: bool) -> None:
    base, records = data
    producer = (42, 1, 9) if transactional else (-1, -1, -1)
    with kafka_python_codecs():
        encoded = kafka_python_build(
            records, compression, base_offset=base, producer=producer, transactional=transactional
        )
    [batch] = decode_batches(encoded)
    assert batch.records == tuple(records)
    # kafka-python sends a batch uncompressed when compression would not shrink it.
    assert batch.compression in (compression, "none")
    assert batch.attributes & 0x07 == DefaultRecordBatch(bytearray(encoded)).compression_type
    with kafka_python_codecs():
        assert_matches_kafka_python(batch, encoded)


@pytest.mark.parametrize("compression", CODECS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=record_lists(max_size=15), transactional=st.booleans())
def test_our_batches_decode_with_kafka_python(
    compression: str, data: tuple[int, list[WireRecord]], transactional: bool
) -> None:
    base, records = data
    encoded = encode_batch(
        records,
        base_offset=base,
        compression=compression,  # type: ignore[arg-type]
        producer_id=42 if transactional else -1,
        producer_epoch=1 if transactional else -1,
        base_sequence=9 if transactional else -1,
        transactional=transactional,
    )
    with kafka_python_codecs():
        ref = DefaultRecordBatch(bytearray(encoded))
        assert ref.compression_type == KAFKA_PYTHON_CODEC_IDS[compression]
        assert_matches_kafka_python(decode_batches(encoded)[0], encoded)


@pytest.mark.parametrize("compression", native_kafka_python_codecs())
def test_kafka_python_codecs_without_shims(compression: str) -> None:
    """Codecs kafka-python supports natively in this venv, with no substitution at all."""
    records = [WireRecord(i, 1_700_000_000_000 + i, b"k%d" % i, b"value" * i, (("h", b"v"),)) for i in range(50)]
    theirs = kafka_python_build(records, compression)
    assert decode_batches(theirs)[0].records == tuple(records)
    ours = encode_batch(records, compression=compression)  # type: ignore[arg-type]
    assert_matches_kafka_python(decode_batches(ours)[0], ours)


@pytest.mark.parametrize("compression", CODECS)
def test_memory_records_multi_batch_interop(compression: str) -> None:
    with kafka_python_codecs():
        parts = []
        for start in (0, 3):
            codec = KAFKA_PYTHON_CODEC_IDS[compression]
            builder = MemoryRecordsBuilder(magic=2, compression_type=codec, batch_size=1 << 20, offset=start)
            for i in range(3):
                builder.append(timestamp=100 + i, key=None, value=b"m%d" % (start + i), headers=[("x", b"y")])
            builder.close()
            parts.append(bytes(builder.buffer()))
        batches = decode_batches(b"".join(parts))
        assert [r.value for b in batches for r in b.records] == [b"m%d" % i for i in range(6)]
        assert [r.offset for b in batches for r in b.records] == list(range(6))

        ours = encode_batch(
            [WireRecord(10, 5, b"a", b"1"), WireRecord(11, 6, b"b", b"2")],
            base_offset=10,
            compression=compression,  # type: ignore[arg-type]
        ) + encode_batch([WireRecord(12, 7, None, b"3", (("k", None),))], base_offset=12)
        memory = MemoryRecords(ours)
        seen: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]] = []
        while memory.has_next():
            batch = memory.next_batch()
            assert batch.validate_crc()
            seen.extend((r.offset, r.key, r.value, list(r.headers)) for r in batch)
        assert seen == [(10, b"a", b"1", []), (11, b"b", b"2", []), (12, None, b"3", [("k", None)])]


def test_xerial_and_raw_snappy_both_decode() -> None:
    records = [WireRecord(i, i, None, bytes(range(256)) * 300) for i in range(3)]
    raw = encode_batch(records)
    body = raw[HEADER_SIZE:]
    blocks = [body[i : i + 32 * 1024] for i in range(0, len(body), 32 * 1024)]
    assert len(blocks) > 1
    xerial = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    for block in blocks:
        compressed = bytes(cramjam.snappy.compress_raw(block))
        xerial += struct.pack(">i", len(compressed)) + compressed
    header = bytearray(raw[:HEADER_SIZE])
    struct.pack_into(">i", header, 8, HEADER_SIZE - 12 + len(xerial))
    struct.pack_into(">h", header, 21, 2)  # snappy
    assert decode_batches(recrc(bytes(header) + xerial))[0].records == tuple(records)
    assert decode_batches(encode_batch(records, compression="snappy"))[0].records == tuple(records)


def test_lz4_frames_use_independent_blocks() -> None:
    encoded = encode_batch([WireRecord(0, 0, None, b"z" * 200_000)], compression="lz4")
    frame = encoded[HEADER_SIZE:]
    assert frame[:4] == b"\x04\x22\x4d\x18"
    assert frame[4] & 0x20, "Kafka's Java LZ4 reader rejects linked blocks"


# --- corruption and truncation ----------------------------------------------------------


def sample_batches() -> bytes:
    return encode_batch(
        [WireRecord(0, 10, b"key", b"value", (("h", b"1"),)), WireRecord(1, 11, None, b"v2")],
        producer_id=7,
        producer_epoch=0,
        base_sequence=0,
    ) + encode_batch([WireRecord(2, 12, b"k", None)], base_offset=2, compression="gzip")


def test_every_crc_covered_byte_flip_is_detected() -> None:
    data = encode_batch([WireRecord(0, 10, b"key", b"value", (("h", b"1"),))])
    for pos in range(CRC_START, len(data)):
        corrupted = bytearray(data)
        corrupted[pos] ^= 0x41
        with pytest.raises(CorruptRecordError, match="CRC-32C mismatch"):
            decode_batches(bytes(corrupted))


def test_crc_field_corruption_and_opt_out() -> None:
    data = bytearray(encode_batch([WireRecord(0, 10, b"k", b"v")]))
    data[17] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC-32C mismatch") as info:
        decode_batches(bytes(data))
    assert info.value.offset == 0
    assert decode_batches(bytes(data), verify_crc=False)[0].records[0].value == b"v"


def test_offsets_and_leader_epoch_are_outside_the_crc() -> None:
    data = bytearray(encode_batch([WireRecord(0, 10, b"k", b"v")]))
    struct.pack_into(">q", data, 0, 999)
    struct.pack_into(">i", data, 12, 4)
    [batch] = decode_batches(bytes(data))
    assert batch.records[0].offset == 999 and batch.partition_leader_epoch == 4


def test_truncated_data_keeps_complete_batches_only() -> None:
    data = sample_batches()
    first_len = 12 + struct.unpack_from(">i", data, 8)[0]
    for cut in range(len(data) + 1):
        batches = decode_batches(data[:cut])
        expected = 0 if cut < first_len else 1 if cut < len(data) else 2
        assert len(batches) == expected
        if cut in (0, first_len, len(data)):
            assert len(decode_batches(data[:cut], allow_truncated=False)) == expected
        else:
            with pytest.raises(CorruptRecordError, match="complete record batch"):
                decode_batches(data[:cut], allow_truncated=False)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.__setitem__(16, 1), "magic 1"),
        (lambda b: struct.pack_into(">h", b, 21, 5), "codec id 5"),
        (lambda b: struct.pack_into(">i", b, 57, -1), "negative record count"),
        (lambda b: struct.pack_into(">i", b, 57, 2), "cannot fit|ends mid-record|invalid length"),
        (lambda b: struct.pack_into(">i", b, 57, 0), "unexpected bytes after"),
        (lambda b: struct.pack_into(">i", b, 8, 10), "below the 49-byte"),
        (lambda b: struct.pack_into(">h", b, 21, 1), "gzip decompression failed"),
        (lambda b: b.__setitem__(HEADER_SIZE, 0x18), "declares"),
    ],
)
def test_malformed_batches_raise_precise_errors(mutate: object, message: str) -> None:
    data = bytearray(encode_batch([WireRecord(0, 10, b"key", b"value")]))
    mutate(data)  # type: ignore[operator]
    with pytest.raises(CorruptRecordError, match=message):
        decode_batches(recrc(data))


def test_header_key_must_be_utf8() -> None:
    data = bytearray(encode_batch([WireRecord(0, 10, None, None, (("\u00e9", None),))]))
    pos = data.index("\u00e9".encode())
    data[pos] = 0xFF
    with pytest.raises(CorruptRecordError, match="UTF-8"):
        decode_batches(recrc(data))


@pytest.mark.integration  # a fuzz campaign: CI only, as in test_framing.py
@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_random_bytes_only_raise_corrupt_record(data: bytes, verify_crc: bool) -> None:
    with contextlib.suppress(CorruptRecordError):
        decode_batches(data, verify_crc=verify_crc)
    with contextlib.suppress(CorruptRecordError):
        decode_batches(recrc(data) if len(data) > CRC_START else data)


SEEDS = [
    sample_batches(),
    encode_batch(
        [WireRecord(i, i * 1000, b"k" * i, b"v" * (i * 40), (("h", b"x" * i),)) for i in range(6)],
        compression="snappy",
    ),
    encode_batch([WireRecord(0, 1, None, b"x" * 300)], compression="lz4"),
    encode_batch([WireRecord(0, 1, b"q", b"x" * 300)], compression="zstd"),
]


@pytest.mark.integration  # a fuzz campaign: CI only, as in test_framing.py
@settings(max_examples=1500, deadline=None)
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 10_000),
)
def test_mutated_batches_only_raise_corrupt_record(seed: bytes, edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        del data[cut % (len(data) + 1) :]
    for candidate in (bytes(data), recrc(data) if len(data) > CRC_START else bytes(data)):
        with contextlib.suppress(CorruptRecordError):
            for batch in decode_batches(candidate, verify_crc=False):
                assert all(isinstance(r, WireRecord) for r in batch.records)


# --- rebase -----------------------------------------------------------------------------


def test_rebase_assigns_consecutive_offsets_without_touching_the_crc() -> None:
    data = sample_batches()
    rebased = rebase(data, 1000, partition_leader_epoch=3)
    before, after = decode_batches(data), decode_batches(rebased)
    assert [b.base_offset for b in after] == [1000, 1002]
    assert [r.offset for b in after for r in b.records] == [1000, 1001, 1002]
    assert [b.crc for b in after] == [b.crc for b in before]
    assert all(b.partition_leader_epoch == 3 for b in after)
    assert [b.records[0].value for b in after] == [b.records[0].value for b in before]
    assert rebase(data, 5)[12:16] == data[12:16]


def test_rebase_rejects_bad_input() -> None:
    data = sample_batches()
    with pytest.raises(CorruptRecordError):
        rebase(data[:-1], 0)
    with pytest.raises(CorruptRecordError):
        rebase(b"", 0)
    with pytest.raises(CorruptRecordError):
        rebase(data + b"\x00" * 20, 0)
    with pytest.raises(ValueError, match="non-negative"):
        rebase(data, -1)
    with pytest.raises(ValueError, match="int32"):
        rebase(data, 0, partition_leader_epoch=2**31)


def test_a_rebased_head_and_the_rest_of_the_batch_are_the_rebased_batch() -> None:
    """What the raw-batch store writes (the new head, then the batch's own bytes after it)
    is what rebase makes of one batch; anything but one complete v2 batch is refused."""
    first_length = 12 + int.from_bytes(sample_batches()[8:12], "big")
    one = sample_batches()[:first_length]
    head = rebased_head(one, 1000, partition_leader_epoch=3)
    assert head + one[REBASED_HEAD_SIZE:] == rebase(one, 1000, partition_leader_epoch=3)
    for bad in (sample_batches(), one[:-1], one[:40], b""):
        with pytest.raises(CorruptRecordError):
            rebased_head(bad, 0, partition_leader_epoch=0)
    wrong_magic = bytearray(one)
    wrong_magic[16] = 1
    with pytest.raises(CorruptRecordError, match="magic"):
        rebased_head(bytes(wrong_magic), 0, partition_leader_epoch=0)
    with pytest.raises(CorruptRecordError, match="int64"):
        rebased_head(one, 2**63 - 1, partition_leader_epoch=0)


# --- encode validation ------------------------------------------------------------------


def test_encode_rejects_invalid_input() -> None:
    one = [WireRecord(0, 0, None, None)]
    with pytest.raises(ValueError, match="at least one record"):
        encode_batch([])
    with pytest.raises(ValueError, match="unknown compression"):
        encode_batch(one, compression="brotli")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timestamp_type"):
        encode_batch(one, timestamp_type="now")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="producer_id"):
        encode_batch(one, transactional=True)
    with pytest.raises(ValueError, match="must be above"):
        encode_batch([WireRecord(1, 0, None, None), WireRecord(1, 0, None, None)])
    with pytest.raises(ValueError, match="must be above"):
        encode_batch(one, base_offset=1)
    with pytest.raises(ValueError, match="must be above"):
        encode_batch([WireRecord(2**31, 0, None, None)])
    with pytest.raises(ValueError, match="out of range"):
        encode_batch([WireRecord(0, 2**63, None, None)])
    with pytest.raises(ValueError, match="64-bit varlong"):
        encode_batch([WireRecord(0, -(2**62), None, None), WireRecord(1, 2**62, None, None)])
    with pytest.raises(ValueError, match="out of range"):
        encode_batch(one, producer_epoch=2**15)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (WireRecord(0, 0, "text", None), "key must be bytes"),  # type: ignore[arg-type]
        (WireRecord(0, 0, None, 12), "value must be bytes"),  # type: ignore[arg-type]
        (WireRecord(0, 0, None, None, ((b"k", b"v"),)), "header"),  # type: ignore[arg-type]
        (WireRecord(0, 0, None, None, (("k", "v"),)), "header"),  # type: ignore[arg-type]
        (WireRecord(0, 0, None, None, (("k",),)), "header"),  # type: ignore[arg-type]
        (WireRecord(0, 0.5, None, None), "must be int"),  # type: ignore[arg-type]
    ],
)
def test_encode_names_the_unencodable_field(record: WireRecord, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        encode_batch([record])


def test_encode_accepts_bytes_like_payloads() -> None:
    record = WireRecord(0, 0, bytearray(b"k"), memoryview(b"v"), (("h", bytearray(b"x")),))  # type: ignore[arg-type]
    [batch] = decode_batches(encode_batch([record]))
    assert batch.records[0] == WireRecord(0, 0, b"k", b"v", (("h", b"x"),))
