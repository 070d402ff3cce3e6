"""``lab.serve()``: the Kafka protocol endpoint of an embedded lab, in its own process.

Real clients (kafka-python, confluent-kafka and aiokafka in threads, confluent-kafka in a
subprocess) work on the notebook's own data directory while the notebook's lab sees the
same records, groups and offsets; ``lab.close()`` stops the endpoint.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import confluent_kafka as ck
import pandas as pd
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from harness import free_port
from kafka import KafkaConsumer, KafkaProducer

import streamlab
from streamlab.errors import ClosedError, ConfigError, UnsupportedOperationError
from streamlab.kafka.mock_cluster import MockCluster
from streamlab.storage.lock import served_address


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "lab"


@pytest.fixture
def lab(data_dir: Path) -> Iterator[streamlab.Lab]:
    opened = streamlab.connect(data_dir)
    try:
        yield opened
    finally:
        opened.close()


def _in_thread(work: Callable[[], Any], timeout: float = 30) -> Any:
    """Run ``work`` in another thread (as a library the notebook started would) and return its result."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(work())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the client thread did not finish"
    if errors:
        raise errors[0]
    return out[0]


def _refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _as_bytes(values: pd.Series) -> list[bytes]:
    """A wire client's values as it sent them (replay may show text as str)."""
    return [v.encode() if isinstance(v, str) else v for v in values]


def _group_row(lab: streamlab.Lab, group: str) -> dict[str, Any]:
    groups = lab.groups()
    rows = groups[groups["group"] == group].to_dict("records")
    assert rows, f"{group} is not in lab.groups():\n{groups}"
    return rows[0]


def test_kafka_python_in_a_thread_reads_and_writes_the_notebooks_directory(lab: streamlab.Lab) -> None:
    lab.create_topic("clicks", partitions=2)
    with lab.producer() as p:
        for i in range(50):
            p.send("clicks", value={"n": i}, key=f"u{i % 3}")
    addr = lab.serve()
    assert addr.startswith("127.0.0.1:")

    def produce_and_consume() -> list[int]:
        producer = KafkaProducer(bootstrap_servers=addr, acks="all")
        for i in range(50, 80):
            producer.send("clicks", json.dumps({"n": i}).encode(), key=b"wire")
        producer.flush(10)
        producer.close()
        consumer = KafkaConsumer("clicks", bootstrap_servers=addr, group_id="kp-group", auto_offset_reset="earliest",
                                 enable_auto_commit=False, consumer_timeout_ms=10_000)  # fmt: skip
        seen = []
        for message in consumer:
            seen.append(json.loads(message.value)["n"])
            if len(seen) == 80:
                break
        consumer.commit()
        consumer.close()
        return seen

    assert sorted(_in_thread(produce_and_consume)) == list(range(80))
    replayed = lab.replay("clicks", raw=True)  # raw: JSON as text, the wire client's values as bytes
    assert sorted(json.loads(v)["n"] for v in replayed["value"]) == list(range(80))
    assert _group_row(lab, "kp-group")["state"] == "Empty"
    lag = lab.lag("kp-group")
    assert lag["lag"].sum() == 0 and lag["committed"].sum() == 80


def test_a_confluent_kafka_group_shows_up_in_the_notebook(lab: streamlab.Lab) -> None:
    lab.create_topic("orders", partitions=3)
    addr = lab.serve()
    producer = ck.Producer({"bootstrap.servers": addr})
    for i in range(30):
        producer.produce("orders", value=b"order-%d" % i, key=b"k%d" % (i % 5))
    assert producer.flush(10) == 0
    consumer = ck.Consumer({"bootstrap.servers": addr, "group.id": "ck-group", "client.id": "ck-member",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    try:
        consumer.subscribe(["orders"])
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(got) < 30 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        consumer.commit(asynchronous=False)
        assert sorted(got) == sorted(b"order-%d" % i for i in range(30))
        row = _group_row(lab, "ck-group")  # while its member is in it
        assert (row["state"], row["members"]) == ("Stable", 1)
        assert set(lab.describe_group("ck-group")["client_id"]) == {"ck-member"}
    finally:
        consumer.close()
    assert lab.lag("ck-group")["lag"].sum() == 0
    assert sorted(_as_bytes(lab.replay("orders", raw=True)["value"])) == sorted(got)


def test_aiokafka_in_a_thread(lab: streamlab.Lab) -> None:
    lab.create_topic("events", partitions=2)
    addr = lab.serve()

    async def produce_and_consume() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=addr, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(40):
                await producer.send_and_wait("events", b"async-%d" % i, key=b"k%d" % (i % 4))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("events", bootstrap_servers=addr, group_id="aio-group",
                                    auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
        await consumer.start()
        try:
            got: list[bytes] = []
            async with asyncio.timeout(20):
                while len(got) < 40:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        got.extend(r.value for r in records if r.value is not None)
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    got = _in_thread(lambda: asyncio.run(produce_and_consume()))
    assert sorted(got) == sorted(b"async-%d" % i for i in range(40))
    assert sorted(_as_bytes(lab.replay("events", raw=True)["value"])) == sorted(got)
    assert lab.lag("aio-group")["committed"].sum() == 40


_SUBPROCESS_CLIENT = textwrap.dedent(
    """
    import sys
    import confluent_kafka as ck

    addr, topic = sys.argv[1], sys.argv[2]
    producer = ck.Producer({"bootstrap.servers": addr})
    for i in range(100):
        producer.produce(topic, value=b"from-another-process-%d" % i)
    assert producer.flush(10) == 0
    consumer = ck.Consumer({"bootstrap.servers": addr, "group.id": "proc-group", "auto.offset.reset": "earliest",
                            "enable.auto.commit": False})
    consumer.subscribe([topic])
    count = 0
    while count < 150:
        msg = consumer.poll(10)
        assert msg is not None, f"only {count} records arrived"
        if msg.error() is None:
            count += 1
    consumer.commit(asynchronous=False)
    consumer.close()
    print(count)
    """
)


def test_a_client_in_another_process(lab: streamlab.Lab, data_dir: Path) -> None:
    lab.create_topic("shared")
    with lab.producer() as p:
        for i in range(50):
            p.send("shared", value={"from": "notebook", "i": i})
    addr = lab.serve()
    # another process cannot open the directory; it is told where it is served
    assert served_address(data_dir) == f"kafka://{addr}"
    done = subprocess.run([sys.executable, "-c", _SUBPROCESS_CLIENT, addr, "shared"], capture_output=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["150"]
    replayed = lab.replay("shared", raw=True)
    assert len(replayed) == 150
    assert _as_bytes(replayed["value"].iloc[50:]) == [b"from-another-process-%d" % i for i in range(100)]
    assert _group_row(lab, "proc-group")["state"] == "Empty"
    assert lab.lag("proc-group")["committed"].tolist() == [150]


def test_a_kafka_lab_over_the_endpoint_polls_frames_beside_the_embedded_one(lab: streamlab.Lab) -> None:
    lab.create_topic("metrics", partitions=2)
    addr = lab.serve()
    with streamlab.connect(f"kafka://{addr}") as remote:
        with remote.producer() as p:
            for i in range(20):
                p.send("metrics", value={"cpu": i / 10, "host": f"h{i % 2}"}, key=f"h{i % 2}")
        with remote.consumer(["metrics"], group="frames", auto_offset_reset="earliest") as c:
            frames = []
            deadline = time.monotonic() + 20
            while sum(map(len, frames)) < 20 and time.monotonic() < deadline:
                frames.append(c.poll_frame(timeout=1, max_records=8))
            c.commit()
    got = pd.concat(frames).drop(columns="topic").sort_values(["partition", "offset"], ignore_index=True)
    pd.testing.assert_frame_equal(got, lab.replay("metrics"))
    assert lab.lag("frames")["lag"].sum() == 0


def test_close_stops_the_endpoint_and_the_directory_opens_again(data_dir: Path) -> None:
    lab = streamlab.connect(data_dir)
    lab.create_topic("t")
    addr = lab.serve()
    # a consumer in a long poll while the lab closes: it is answered, and close does not wait it out
    consumer = ck.Consumer({"bootstrap.servers": addr, "group.id": "g", "fetch.wait.max.ms": 5000,
                            "auto.offset.reset": "earliest", "log_level": 0})  # fmt: skip
    consumer.subscribe(["t"])
    consumer.poll(1.0)
    started = time.monotonic()
    lab.close()
    assert time.monotonic() - started < 5
    consumer.close()
    assert _refused(addr)
    assert served_address(data_dir) is None
    with streamlab.connect(data_dir) as again:
        port = int(addr.rsplit(":", 1)[1])
        assert again.serve(port) == addr  # the port is free again
        producer = ck.Producer({"bootstrap.servers": addr})
        producer.produce("t", value=b"after reopen")
        assert producer.flush(10) == 0
        assert _as_bytes(again.replay("t", raw=True)["value"]) == [b"after reopen"]
    assert _refused(addr)


def test_serve_twice_gives_the_same_address_and_labs_on_one_directory_share_it(data_dir: Path) -> None:
    first = streamlab.connect(data_dir)
    first.create_topic("t")
    addr = first.serve()
    assert first.serve() == addr
    assert first.serve(int(addr.rsplit(":", 1)[1])) == addr
    with pytest.raises(ConfigError, match="already serves"):
        first.serve(free_port())
    second = streamlab.connect(data_dir)  # a re-run first cell: the same broker, so the same endpoint
    assert second.serve() == addr
    with pytest.raises(ConfigError, match="already served"):
        streamlab.connect(data_dir).serve(free_port())
    first.close()
    # the second lab still serves it (a whole exchange: a bare connect racing the close
    # below can leak a socket in Python 3.11's asyncio, whose Server refuses to attach it)
    assert served_address(data_dir) == f"kafka://{addr}"
    producer = ck.Producer({"bootstrap.servers": addr})
    producer.produce("t", value=b"still served")
    assert producer.flush(10) == 0
    del producer
    assert _as_bytes(second.replay("t", raw=True)["value"]) == [b"still served"]
    second.close()
    assert _refused(addr)


def test_serve_refuses_what_it_cannot_do(lab: streamlab.Lab, mock_cluster: MockCluster) -> None:
    with (
        streamlab.connect(f"kafka://{mock_cluster.bootstrap}") as remote,
        pytest.raises(UnsupportedOperationError, match="give Kafka clients that address"),
    ):
        remote.serve()
    for bad in (-1, 65536, "9092", True):
        with pytest.raises(ConfigError, match="port must be"):
            lab.serve(bad)  # type: ignore[arg-type]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match=r"cannot serve .* choose another port"):
            lab.serve(taken.getsockname()[1])
    addr = lab.serve()  # a failed attempt leaves nothing behind
    lab.close()
    assert _refused(addr)
    with pytest.raises(ClosedError):
        lab.serve()


@pytest.fixture
def mock_cluster() -> Iterator[MockCluster]:
    with MockCluster(brokers=1) as cluster:
        yield cluster
