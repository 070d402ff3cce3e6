"""A topic's own key/value formats (``lab.set_format``), the same on every backend: kept as
topic configs by the embedded broker, by ``streamlab serve`` and by librdkafka's mock
cluster (Apache Kafka refuses config names it does not know: set_format then raises)."""

from __future__ import annotations

from collections.abc import Callable

import streamlab


def test_a_topic_format_set_once_is_read_by_replay_poll_and_browse(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    with lab.producer() as p:
        p.send(topic, value={"a": 1}, key="k1")
        p.send(topic, value=b"plain", key="k2")
    lab.set_format(topic, value_format="string", key_format="bytes")
    assert lab.formats(topic) == {"key_format": "bytes", "value_format": "string"}
    assert lab.topics().set_index("name").loc[topic, "config"]["streamlab.value.format"] == "string"
    frame = lab.replay(topic)
    assert frame["value"].tolist() == ['{"a":1}', "plain"] and frame["key"].tolist() == [b"k1", b"k2"]
    assert lab.browse(topic)["value"].tolist() == ['{"a":1}', "plain"]
    with lab.consumer(topic, auto_offset_reset="earliest") as consumer:
        polled = []
        for _ in range(40):
            polled += consumer.poll(timeout=0.25)
            if len(polled) == 2:
                break
    assert [r.value for r in polled] == ['{"a":1}', "plain"]
    assert lab.replay(topic, value_format="auto")["a"].tolist()[0] == 1
