"""One consumer-group member in its own process, for the server's group tests.

``python group_worker.py CLIENT BOOTSTRAP GROUP TOPIC [ASSIGNOR]`` with CLIENT
``kafka-python``, ``confluent`` or ``confluent-consumer-protocol`` (KIP-848, ASSIGNOR the
server's: uniform or range). It consumes until SIGTERM (then closes, leaving the
group) or SIGKILL (then nothing), committing after every batch it has written out, and
writes one JSON object per line to stdout:

``{"event": "assigned", "partitions": [0, 1]}``  its whole assignment, after each change
``{"event": "record", "partition": 0, "offset": 5, "value": "..."}``
``{"event": "committed", "offsets": {"0": 6}}``  what it just committed
"""

from __future__ import annotations

import json
import signal
import sys
import time
import warnings
from typing import Any

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 500
BATCH = 20
running = True


def emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def stop(*_: object) -> None:
    global running
    running = False


def run_kafka_python(bootstrap: str, group: str, topic: str, assignor: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from kafka import KafkaConsumer, OffsetAndMetadata
        from kafka.consumer.subscription_state import ConsumerRebalanceListener
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
        from kafka.errors import CommitFailedError, KafkaError

    assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, client_id=f"kafka-python-{group}",
        auto_offset_reset="earliest", enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS,
        partition_assignment_strategy=[assignors[assignor]],
    )  # fmt: skip

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        def on_partitions_assigned(self, assigned: Any) -> None:
            emit(event="assigned", partitions=sorted(tp.partition for tp in consumer.assignment()))

    consumer.subscribe([topic], listener=Listener())
    while running:
        batches = consumer.poll(timeout_ms=200, max_records=BATCH)
        done: dict[Any, int] = {}
        for tp, records in batches.items():
            for r in records:
                emit(event="record", partition=r.partition, offset=r.offset, value=r.value.decode())
                done[tp] = r.offset + 1
        if done:
            try:
                consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in done.items()})
                emit(event="committed", offsets={str(tp.partition): o for tp, o in done.items()})
            except (CommitFailedError, KafkaError):
                pass  # a rebalance took the partitions: their next owner reads them again
    consumer.close()


def run_confluent(bootstrap: str, group: str, topic: str, assignor: str) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "client.id": f"confluent-{group}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": HEARTBEAT_MS,
        "partition.assignment.strategy": assignor,
    })  # fmt: skip

    owned: set[int] = set()  # eager protocols assign and revoke everything, cooperative ones a part

    def on_assign(_c: Any, partitions: Any) -> None:
        owned.update(tp.partition for tp in partitions)
        emit(event="assigned", partitions=sorted(owned))

    def on_revoke(_c: Any, partitions: Any) -> None:
        owned.difference_update(tp.partition for tp in partitions)
        emit(event="assigned", partitions=sorted(owned))

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    while running:
        done: dict[int, int] = {}
        for msg in consumer.consume(num_messages=BATCH, timeout=0.2):
            partition, offset, value = msg.partition(), msg.offset(), msg.value()
            if msg.error() or partition is None or offset is None or value is None:
                continue
            emit(event="record", partition=partition, offset=offset, value=value.decode())
            done[partition] = offset + 1
        if done:
            try:
                consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in done.items()], asynchronous=False)
                emit(event="committed", offsets={str(p): o for p, o in done.items()})
            except KafkaException:
                pass  # a rebalance took the partitions: their next owner reads them again
    consumer.close()


def run_confluent_consumer_protocol(bootstrap: str, group: str, topic: str, assignor: str) -> None:
    """confluent-kafka with ``group.protocol=consumer`` (KIP-848): the server assigns, with
    ``assignor`` (uniform or range). Events carry ``t``, the machine's monotonic clock, so
    a test can order the ownership changes of several workers."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "client.id": f"kip848-{group}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "group.protocol": "consumer", "group.remote.assignor": assignor,
    })  # fmt: skip
    owned: set[int] = set()

    def on_assign(_c: Any, partitions: Any) -> None:
        owned.update(tp.partition for tp in partitions)
        emit(event="assigned", partitions=sorted(owned), t=time.monotonic())

    def on_revoke(_c: Any, partitions: Any) -> None:
        owned.difference_update(tp.partition for tp in partitions)
        emit(event="assigned", partitions=sorted(owned), t=time.monotonic())

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    while running:
        done: dict[int, int] = {}
        for msg in consumer.consume(num_messages=BATCH, timeout=0.2):
            partition, offset, value = msg.partition(), msg.offset(), msg.value()
            if msg.error() or partition is None or offset is None or value is None:
                continue
            emit(event="record", partition=partition, offset=offset, value=value.decode(), t=time.monotonic())
            done[partition] = offset + 1
        if done:
            try:
                consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in done.items()], asynchronous=False)
                emit(event="committed", offsets={str(p): o for p, o in done.items()})
            except KafkaException as exc:
                emit(event="commit_failed", offsets={str(p): o for p, o in done.items()}, error=str(exc))
    consumer.close()


def main() -> None:
    client, bootstrap, group, topic = sys.argv[1:5]
    assignor = sys.argv[5] if len(sys.argv) > 5 else "range"
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runners = {"kafka-python": run_kafka_python, "confluent": run_confluent,
               "confluent-consumer-protocol": run_confluent_consumer_protocol}  # fmt: skip
    runners[client](bootstrap, group, topic, assignor)


if __name__ == "__main__":
    main()
