"""The Quix Streams application bench_quix.py runs (in the jobs environment), against
``lab.serve()`` and against librdkafka's mock cluster, unchanged between the two.

BENCH_MODE=throughput: per key, the sum of ``cents`` in tumbling 1 s event-time windows,
written when closed (``.final()``); prints how long the BENCH_RECORDS input records took
from the first to the last (startup, topic checks and the group join are not counted).
BENCH_MODE=latency: the same window, its current value written on every record
(``.current()``) with the ``sent`` time of the newest record in it, so the reader can time
event produced -> window result visible.

The mock cluster has no DescribeConfigs (nor CreateTopics): Quix's topic inspection is
answered from metadata alone, for both targets alike, and bench_quix.py creates every topic
(the changelog too) before the application starts. This touches startup only.
"""

import os
import time
from datetime import timedelta

from quixstreams import Application
from quixstreams.models.topics import admin as quix_admin
from quixstreams.models.topics.topic import TopicConfig


def inspect_from_metadata(self, topic_names, timeout=30):  # type: ignore[no-untyped-def]
    listed = self.list_topics(timeout=timeout)
    return {
        name: TopicConfig(num_partitions=len(listed[name].partitions), replication_factor=1,
                          extra_config={"retention.ms": "-1", "retention.bytes": "-1"})
        if name in listed else None
        for name in topic_names
    }  # fmt: skip


quix_admin.TopicAdmin.inspect_topics = inspect_from_metadata

MODE = os.environ["BENCH_MODE"]
TOTAL = int(os.environ.get("BENCH_RECORDS", "0"))
app = Application(
    broker_address=os.environ["STREAMLAB_BROKER"],
    consumer_group=os.environ["STREAMLAB_GROUP"],
    state_dir=os.environ["STREAMLAB_JOB_STATE_DIR"],
    auto_offset_reset="earliest",
    auto_create_topics=False,
    loglevel="WARNING",
)
seen = {"n": 0, "first": 0.0}


def count(value: dict) -> None:
    if seen["n"] == 0:
        seen["first"] = time.perf_counter()
    seen["n"] += 1
    if seen["n"] == TOTAL:
        print(f"processed {TOTAL} records in {time.perf_counter() - seen['first']:.6f} s", flush=True)


clicks = app.dataframe(app.topic(os.environ["BENCH_INPUT"], value_deserializer="json"))
if MODE == "throughput":
    cents = clicks.update(count).apply(lambda v: v["cents"])
    result = cents.tumbling_window(timedelta(seconds=1)).sum().final()
else:
    result = (
        clicks.tumbling_window(timedelta(seconds=1))
        .reduce(
            lambda agg, v: {"cents": agg["cents"] + v["cents"], "sent": max(agg["sent"], v["sent"])},
            lambda v: {"cents": v["cents"], "sent": v["sent"]},
        )
        .current()
    )
result.to_topic(app.topic(os.environ["BENCH_OUTPUT"], value_serializer="json"))
print("ready", flush=True)
app.run(timeout=float(os.environ.get("IDLE_TIMEOUT", "3")))
