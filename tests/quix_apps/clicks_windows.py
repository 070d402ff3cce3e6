"""A Quix Streams application: revenue (integer cents) per page in tumbling (1 h) and
hopping (1 h every 30 min) event-time windows over the ``clicks`` topic, final windows to
``cents-tumbling`` and ``cents-hopping``. Run by tests/test_quix_job.py with lab.start_job:
the broker address and the group come from STREAMLAB_BROKER and STREAMLAB_GROUP, the state
directory from QUIX_APP_STATE_DIR, the processing guarantee from PROCESSING_GUARANTEE
("at-least-once" unless given, or "exactly-once"); it exits after IDLE_TIMEOUT seconds
without records. RECORD_DELAY_S slows it down per record, for a test that kills it midway:
unslowed, a fast machine runs the whole data set within one commit interval."""

import os
import time
from datetime import timedelta

from quixstreams import Application

app = Application(
    broker_address=os.environ["STREAMLAB_BROKER"],
    consumer_group=os.environ["STREAMLAB_GROUP"],
    state_dir=os.environ["QUIX_APP_STATE_DIR"],
    auto_offset_reset="earliest",
    processing_guarantee=os.environ.get("PROCESSING_GUARANTEE", "at-least-once"),
    commit_interval=1.0,  # a kill -9 then loses (and replays) about a second of work
    # static membership: a restarted instance takes its partitions back at once, instead of
    # waiting out the killed member's session (45 s)
    consumer_extra_config={"group.instance.id": "clicks-windows-0"},
    # exactly-once: a stable transactional.id, as a static deployment has, so a restarted
    # instance fences its killed predecessor and aborts its open transaction at once (with
    # Quix's default, a random id per run, that transaction would hold read_committed
    # readers back until transaction.timeout.ms); at-least-once ignores it
    producer_extra_config={"transactional.id": "clicks-windows-0"},
    loglevel="WARNING",
)
clicks = app.topic("clicks", value_deserializer="json")
cents = app.dataframe(clicks).apply(lambda event: event["cents"])
delay = float(os.environ.get("RECORD_DELAY_S", "0"))
if delay:
    cents = cents.update(lambda _: time.sleep(delay))
# "partition": a window closes when any later record of the partition passes its end, so one
# late-timestamped record per partition closes every window of the data set
tumbling = cents.tumbling_window(timedelta(hours=1)).sum().final(closing_strategy="partition")
tumbling.to_topic(app.topic("cents-tumbling", value_serializer="json"))
hopping = cents.hopping_window(timedelta(hours=1), step_ms=30 * 60 * 1000).sum().final(closing_strategy="partition")
hopping.to_topic(app.topic("cents-hopping", value_serializer="json"))

if __name__ == "__main__":
    app.run(timeout=float(os.environ.get("IDLE_TIMEOUT", "3")))
