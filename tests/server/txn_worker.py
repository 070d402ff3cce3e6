"""A consume-transform-produce worker with a transactional producer (exactly-once).

Usage: python txn_worker.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID BATCH [DIE_AFTER]

Reads INPUT (assigned partition 0, from the group's committed offset), writes each value
upper-cased to OUTPUT, and per BATCH records commits the output together with the input
offsets. With DIE_AFTER, after that many committed transactions it writes half a batch
and kills itself (SIGKILL) with the transaction open. Exits 0 at the end of INPUT.
"""

from __future__ import annotations

import os
import signal
import sys

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


def main() -> None:
    bootstrap, source, sink, group, tid, batch = sys.argv[1:7]
    die_after = int(sys.argv[7]) if len(sys.argv) > 7 else -1
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "isolation.level": "read_committed", "enable.partition.eof": True,
    })  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5})
    producer.init_transactions(10)
    consumer.assign([TopicPartition(source, 0)])  # from the group's committed offset
    committed = 0
    done = False
    while not done:
        producer.begin_transaction()
        n = 0
        while n < int(batch):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    done = True
                    break
                raise SystemExit(f"consume failed: {msg.error()}")
            producer.produce(sink, key=msg.key(), value=msg.value().upper())
            n += 1
            if committed == die_after and n == int(batch) // 2:
                producer.flush(10)  # the half batch is stored, the transaction open
                os.kill(os.getpid(), signal.SIGKILL)
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata(), 10)  # fmt: skip
        producer.commit_transaction(10)
        committed += 1
    consumer.close()


if __name__ == "__main__":
    main()
