"""Kafka's default partitioner: ``murmur2(key) & 0x7fffffff % partitions``.

``murmurhash2`` is a C implementation of the same MurmurHash2 variant Kafka's Java client
uses (seed ``0x9747b28c``); tests check it against kafka-python's pure-Python murmur2.
Records without a key are spread round-robin (Kafka's sticky partitioner spreads them too;
for a notebook an even spread is easier to read than sticky batches).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from murmurhash2 import murmurhash2

KAFKA_SEED = 0x9747B28C

Partitioner = Callable[[bytes | None, int], int]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data`` as an unsigned 32-bit integer."""
    return int(murmurhash2(data, KAFKA_SEED))


def partition_for_key(key: bytes, partitions: int) -> int:
    return (murmurhash2(key, KAFKA_SEED) & 0x7FFFFFFF) % partitions


class DefaultPartitioner:
    """Keyed records by murmur2, unkeyed ones round-robin.

    Hashes are cached per key: streams reuse a modest set of keys, and ``murmurhash2``
    releases the GIL on every call, which costs microseconds when another thread (the
    producer's sender) is busy. The cache is cleared when it grows past ``CACHE_SIZE``.
    """

    CACHE_SIZE = 100_000

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, partitions: int) -> int:
        if key is None:
            return next(self._counter) % partitions
        positive = self._hashes.get(key)
        if positive is None:
            if len(self._hashes) >= self.CACHE_SIZE:
                self._hashes.clear()
            positive = self._hashes[key] = murmurhash2(key, KAFKA_SEED) & 0x7FFFFFFF
        return positive % partitions


class RoundRobinPartitioner:
    """Every record to the next partition, key or not."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def __call__(self, key: bytes | None, partitions: int) -> int:
        return next(self._counter) % partitions


PARTITIONERS: dict[str, Callable[[], Partitioner]] = {
    "murmur2": DefaultPartitioner,
    "default": DefaultPartitioner,
    "round_robin": RoundRobinPartitioner,
}
