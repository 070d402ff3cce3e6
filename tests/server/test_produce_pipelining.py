"""Produce requests a client sends ahead on one connection (``server.connection``'s deferred
answers): while an ``acks=all`` Produce waits for its fsync the server reads and appends
the next ones, and still answers every request in the order it was sent, with the records
stored in that order; anything but a Produce sees the Produce requests before it done.

Driven byte by byte with a raw socket against ``lab.serve()`` in this process (the case a
notebook's producer meets), so the requests really are in the socket together.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import confluent_kafka as ck
import pytest
from kafka_wire import RawClient, kio_request, records
from kio.index import load_response_schema
from kio.serial import entity_reader

import streamlab

MS = datetime.timedelta(milliseconds=1)
N_AHEAD = 40  # past the server's bound on deferred answers (8): it must also wait for some


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[streamlab.Lab, str]]:
    lab = streamlab.connect(tmp_path / "lab")
    try:
        lab.create_topic("ahead", partitions=2)
        yield lab, lab.serve()
    finally:
        lab.close()


def _produce(topic: str, partition: int, data: bytes, *, acks: int = -1, **fields: Any) -> Any:
    return kio_request(
        0, 9, transactional_id=None, acks=acks, timeout=5000 * MS,
        topic_data=[{"name": topic, "partition_data": [{"index": partition, "records": data}]}], **fields,
    )  # fmt: skip


def _answer(client: RawClient, api_key: int, version: int) -> tuple[int, Any]:
    """The next response on the connection: its correlation id and body."""
    data = client.recv_frame()
    (correlation_id,) = struct.unpack_from(">i", data)
    schema = load_response_schema(api_key, version)
    body, _ = entity_reader(schema)(data, 4 + (1 if schema.__flexible__ else 0))
    return correlation_id, body


def test_requests_sent_ahead_are_answered_in_order_and_stored_in_order(served: tuple[streamlab.Lab, str]) -> None:
    lab, address = served
    with RawClient(address) as client:
        sent = []  # (correlation id, api key, version)
        for i in range(N_AHEAD):  # every request in the socket before any answer is read
            acks = 1 if i % 10 == 5 else -1  # an acks=1 one among them waits its turn as well
            body = _produce("ahead", i % 2, records(f"v{i}".encode(), key=f"k{i}".encode()), acks=acks)
            sent.append((client.send(body), 0, 9))
        listing = kio_request(
            2, 7, replica_id=-1, isolation_level=0,
            topics=[{"name": "ahead", "partitions": [{"partition_index": p, "timestamp": -1} for p in (0, 1)]}],
        )  # fmt: skip
        sent.append((client.send(listing), 2, 7))

        answers = [_answer(client, key, version) for _, key, version in sent]

    assert [cid for cid, _ in answers] == [cid for cid, _, _ in sent], "answered in the order sent"
    offsets = [body.responses[0].partition_responses[0] for _, body in answers[:-1]]
    assert [r.error_code.value for r in offsets] == [0] * N_AHEAD
    for partition in (0, 1):
        assert [int(r.base_offset) for r in offsets[partition::2]] == list(range(N_AHEAD // 2))
    # the ListOffsets after them was handled once they were all stored
    latest = {p.partition_index: int(p.offset) for p in answers[-1][1].topics[0].partitions}
    assert latest == {0: N_AHEAD // 2, 1: N_AHEAD // 2}
    stored = lab.replay("ahead")
    for partition in (0, 1):
        part = stored[stored["partition"] == partition].sort_values("offset")
        values = [v.decode() if isinstance(v, bytes) else v for v in part["value"]]
        assert values == [f"v{i}" for i in range(partition, N_AHEAD, 2)]


def test_an_idempotent_producer_with_requests_in_flight_stores_each_record_once(
    served: tuple[streamlab.Lab, str],
) -> None:
    """librdkafka's idempotent producer keeps up to 5 Produce requests in flight on one
    connection, with sequence numbers the server checks in order."""
    lab, address = served
    producer = ck.Producer({"bootstrap.servers": address, "enable.idempotence": True, "linger.ms": 0})
    failures: list[Any] = []
    for i in range(2_000):
        producer.produce("ahead", f"{i}".encode(), partition=i % 2,
                         on_delivery=lambda err, _msg: err and failures.append(err))  # fmt: skip
        if i % 100 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert not failures
    stored = lab.replay("ahead")
    assert len(stored) == 2_000
    for partition in (0, 1):
        part = stored[stored["partition"] == partition].sort_values("offset")
        values = [int(v.decode() if isinstance(v, bytes) else v) for v in part["value"]]
        assert values == list(range(partition, 2_000, 2)), "each record once, in the order produced"
