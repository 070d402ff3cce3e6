"""Kafka's default partitioner, checked against kafka-python's independent murmur2."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from streamlab.model.partitioner import DefaultPartitioner, murmur2, partition_for_key


@given(st.binary(max_size=300))
def test_murmur2_matches_kafka_python(key: bytes) -> None:
    assert murmur2(key) & 0xFFFFFFFF == kafka_python_murmur2(key) & 0xFFFFFFFF


@given(st.binary(min_size=1, max_size=64), st.integers(1, 1000))
def test_partition_matches_kafkas_formula(key: bytes, partitions: int) -> None:
    expected = (kafka_python_murmur2(key) & 0x7FFFFFFF) % partitions
    assert partition_for_key(key, partitions) == expected
    assert DefaultPartitioner()(key, partitions) == expected


def test_known_values_from_kafkas_own_tests() -> None:
    # Kafka's UtilsTest.testMurmur2 vectors (Java signed ints).
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, java_int in cases.items():
        assert murmur2(key) == java_int & 0xFFFFFFFF


def test_unkeyed_records_rotate() -> None:
    partitioner = DefaultPartitioner()
    assert [partitioner(None, 3) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
