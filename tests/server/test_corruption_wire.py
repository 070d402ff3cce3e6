"""A damaged segment under `streamlab serve`: the records before it are served, the
damaged offsets answer CORRUPT_MESSAGE for that partition alone, and the server log
names the file (a warning, no traceback)."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from harness import ServerProcess
from kafka_wire import RawClient
from test_protocol import fetch

import streamlab

CORRUPT_MESSAGE = 2


def test_a_damaged_segment_is_refused_per_partition_and_the_rest_is_served(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with streamlab.connect(data) as lab:
        lab.create_topic("t", config={"retention.ms": -1})
        for rnd in range(3):
            with lab.producer() as p:
                for i in range(10):
                    p.send("t", value=b"%d" % (rnd * 10 + i))
            lab.roll("t")
    second = sorted((data / "topics" / "t" / "0").glob("*.parquet"))[1]
    damaged = bytearray(second.read_bytes())
    damaged[len(damaged) // 2] ^= 0x04
    second.write_bytes(bytes(damaged))

    server = ServerProcess(data, tmp_path / "server.log")
    server.start()
    try:
        with RawClient(server.bootstrap) as client:
            assert fetch(client, "t", 0).error_code.value == 0
            assert len(fetch(client, "t", 0).records) > 0
            refused = fetch(client, "t", 10)
            assert refused.error_code.value == CORRUPT_MESSAGE
            assert not refused.records
            after = fetch(client, "t", 20)
            assert after.error_code.value == 0 and len(after.records) > 0
        consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "g", "enable.auto.commit": False})
        try:
            consumer.assign([TopicPartition("t", 0, 0)])
            got: list[bytes] = []
            for _ in range(20):
                got.extend(m.value() for m in consumer.consume(100, 0.5) if m.error() is None)
                if len(got) >= 10:
                    break
            assert got[:10] == [b"%d" % i for i in range(10)]
            assert all(int(v) < 10 for v in got)  # nothing of the damaged segment is ever served
        finally:
            consumer.close()
        log = server.log()
        assert second.name in log and "Traceback" not in log
    finally:
        server.kill()
