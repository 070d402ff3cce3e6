"""aiokafka (an asyncio client) against `streamlab serve`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from harness import ServerProcess


async def _produce_and_consume(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                compression_type="lz4")  # fmt: skip
    await producer.start()
    try:
        sent = [await producer.send(topic, key=b"k%d" % (i % 4), value=b"async %d" % i) for i in range(500)]
        stored = [await future for future in sent]
    finally:
        await producer.stop()
    assert len({(m.partition, m.offset) for m in stored}) == 500

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(2)])
        got = []
        async with asyncio.timeout(20):
            while len(got) < 500:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(records)
    finally:
        await consumer.stop()
    assert sorted((r.partition, r.offset, r.value) for r in got) == sorted(
        (m.partition, m.offset, b"async %d" % i) for i, m in enumerate(stored)
    )


def test_produce_and_consume(shared_server: ServerProcess, create_shared_topic: Callable[..., str]) -> None:
    asyncio.run(_produce_and_consume(shared_server.bootstrap, create_shared_topic(partitions=2)))
