"""A Quix Streams application: revenue (integer cents) per page in tumbling event-time
windows (``WINDOW_MS``, default 5 minutes; ``GRACE_MS`` of grace, default 0) over the JSON
clicks of ``INPUT`` (keyed by page), every update of a window written to ``OUTPUT``
(``.current()``: a window's row is rewritten as it fills, so a live table or plot sees it
grow). Run with lab.start_job(..., group=, state_dir=, outputs=): the broker, group and
state directory come from STREAMLAB_BROKER, STREAMLAB_GROUP and STREAMLAB_JOB_STATE_DIR;
it exits after IDLE_TIMEOUT seconds without records. A record older than a closed window
is skipped with Quix's "Skipping window processing for the closed window" warning."""

import os
from datetime import timedelta

from quixstreams import Application

app = Application(
    broker_address=os.environ["STREAMLAB_BROKER"],
    consumer_group=os.environ["STREAMLAB_GROUP"],
    state_dir=os.environ["STREAMLAB_JOB_STATE_DIR"],
    auto_offset_reset="earliest",
    commit_interval=0.5,
    loglevel="WARNING",  # the late-record warnings, without Quix's INFO chatter
)
clicks = app.topic(os.environ.get("INPUT", "clicks"), value_deserializer="json")
window = timedelta(milliseconds=int(os.environ.get("WINDOW_MS", str(5 * 60 * 1000))))
grace = timedelta(milliseconds=int(os.environ.get("GRACE_MS", "0")))
revenue = app.dataframe(clicks).apply(lambda click: click["cents"])
revenue = revenue.tumbling_window(window, grace_ms=grace).sum().current()
revenue.to_topic(app.topic(os.environ.get("OUTPUT", "revenue"), value_serializer="json"))

if __name__ == "__main__":
    app.run(timeout=float(os.environ.get("IDLE_TIMEOUT", "3")))
