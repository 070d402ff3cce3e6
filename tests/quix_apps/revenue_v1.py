"""Revenue (integer cents) per country in 1 h tumbling event-time windows over ``clicks``,
to the topic named by $OUTPUT. Version 1 has the tutorials' bug: it adds up the amount of
every event that has one, so add_to_cart lines count as revenue (revenue_v2.py is the fix).

Everything else comes from lab.start_job's environment: Quix reads the broker address,
the consumer group and the state directory from Quix__Broker__Address,
Quix__Consumer_Group and Quix__Deployment__State__Path. It exits after $IDLE_TIMEOUT
seconds without records."""

import os
from datetime import timedelta

from quixstreams import Application

app = Application(auto_offset_reset="earliest", commit_interval=1.0, loglevel="WARNING")
clicks = app.dataframe(app.topic("clicks", value_deserializer="json"))
cents = clicks.apply(lambda event: event.get("cents") or 0)  # the bug: not only purchases
revenue = cents.tumbling_window(timedelta(hours=1)).sum().final(closing_strategy="partition")
revenue.to_topic(app.topic(os.environ["OUTPUT"], value_serializer="json"))

if __name__ == "__main__":
    app.run(timeout=float(os.environ.get("IDLE_TIMEOUT", "3")))
