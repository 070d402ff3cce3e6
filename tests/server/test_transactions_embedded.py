"""A directory `streamlab serve` ran transactions on, opened with the embedded broker:
replay and SQL show committed data only, and no reader ever sees a transaction marker."""

from __future__ import annotations

from collections.abc import Callable

from harness import ServerProcess
from test_transactions import txn_producer

import streamlab


def test_replay_sql_and_consumers_of_the_embedded_broker_never_show_markers(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    topic = create_topic(1)
    producer = txn_producer(server, "embedded-view")
    for outcome in ("commit", "abort", "commit"):
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, value=f'{{"txn": "{outcome}", "i": {i}}}'.encode(), key=b"k")
        producer.flush(10)  # stored before the outcome: an abort would purge what was not sent
        if outcome == "commit":
            producer.commit_transaction(10)
        else:
            producer.abort_transaction(10)
    server.stop()  # the directory is the embedded broker's again
    with streamlab.connect(server.data_dir) as lab:
        end = int(lab.offsets(topic)["high_watermark"][0])
        assert end == 12  # 9 records and 3 markers, each at its own offset
        replayed = lab.replay(topic)  # JSON another client wrote: spread into fields
        assert replayed["txn"].tolist() == ["commit"] * 6  # committed only, no markers
        assert lab.sql(f'SELECT count(*) AS n FROM "{topic}"')["n"][0] == 6
        with lab.consumer(auto_offset_reset="earliest") as c:  # read_uncommitted, as Kafka's default
            tp = streamlab.TopicPartition(topic, 0)
            c.assign([tp])
            seen = []
            for _ in range(20):  # each poll moves on, over records and markers alike
                if c.position(tp) >= end:
                    break
                seen.extend(r.value["txn"] for r in c.poll(timeout=5))  # JSON objects come as dicts
            assert seen == ["commit"] * 3 + ["abort"] * 3 + ["commit"] * 3
            assert c.position(tp) == end  # past the last marker
