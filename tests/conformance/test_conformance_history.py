"""Lag and throughput over time: samples taken at chosen times, read back as DataFrames."""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import pytest

import streamlab
from streamlab import TopicPartition
from streamlab.errors import ConfigError, GroupIdNotFoundError, UnknownTopicError

T0 = pd.Timestamp("2026-01-05T00:00:00Z")


def _commit(lab: streamlab.Lab, group: str, offsets: dict[TopicPartition, int]) -> None:
    with lab.consumer(group=group, enable_auto_commit=False) as c:
        c.assign(list(offsets))
        c.commit(offsets)


def _send(lab: streamlab.Lab, topic: str, counts: dict[int, int]) -> None:
    with lab.producer() as p:
        for partition, n in counts.items():
            for i in range(n):
                p.send(topic, value={"i": i}, partition=partition)


def test_samples_give_lag_and_rates_over_time(
    lab: streamlab.Lab, backend: str, make_topic: Callable[..., str], make_group: Callable[[], str], tmp_path: object
) -> None:
    topic, group = make_topic(partitions=2), make_group()
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    _send(lab, topic, {0: 10, 1: 4})
    _commit(lab, group, {tp0: 2, tp1: 0})
    lab.sample_history(topics=[topic], groups=[group], now=T0)
    _send(lab, topic, {0: 6})
    _commit(lab, group, {tp0: 10, tp1: 4})
    lab.sample_history(topics=topic, groups=group, now=T0 + pd.Timedelta(seconds=2))

    flow = lab.throughput_history(topic)
    assert list(flow.columns) == ["time", "partition", "log_start_offset", "end_offset", "in_per_s"]
    assert flow["time"].tolist() == [T0, T0, T0 + pd.Timedelta(seconds=2), T0 + pd.Timedelta(seconds=2)]
    assert flow[["partition", "end_offset"]].values.tolist() == [[0, 10], [1, 4], [0, 16], [1, 4]]
    assert flow["in_per_s"].isna().tolist() == [True, True, False, False]
    assert flow["in_per_s"].tolist()[2:] == [3.0, 0.0]  # 6 records in 2 s on partition 0

    lag = lab.lag_history(group)
    columns = ["time", "topic", "partition", "committed", "end_offset", "lag", "time_lag", "out_per_s"]
    assert list(lag.columns) == columns
    assert lag[["partition", "committed", "end_offset", "lag"]].values.tolist() == [
        [0, 2, 10, 8], [1, 0, 4, 4], [0, 10, 16, 6], [1, 4, 4, 0],
    ]  # fmt: skip
    assert lag["out_per_s"].tolist()[2:] == [4.0, 2.0]
    assert lag["time_lag"].iloc[3] == pd.Timedelta(0) and (lag["time_lag"] >= pd.Timedelta(0)).all()

    both = lab.throughput_history(topic, group=group)
    assert both[["in_per_s", "out_per_s", "lag"]].values.tolist()[2:] == [[3.0, 4.0, 6], [0.0, 2.0, 0]]

    with pytest.raises(GroupIdNotFoundError, match="sample_history"):
        lab.lag_history("no-such-group")
    with pytest.raises(UnknownTopicError, match=group):  # names what history holds
        lab.throughput_history("no-such-topic")
    with pytest.raises(UnknownTopicError):
        lab.sample_history(topics=["no-such-topic"])
    with pytest.raises(ConfigError):
        lab.start_history(interval=0)

    target = lab.backend.describe().split(" ")[0]
    lab.close()
    with streamlab.connect(target) as again:
        if backend == "embedded":  # kept in the catalog
            assert again.lag_history(group)[columns[:6]].equals(lag[columns[:6]])
        else:  # kept in the memory of the lab that sampled
            with pytest.raises(GroupIdNotFoundError, match="no history yet"):
                again.lag_history(group)


def test_start_history_samples_in_the_background_until_close(
    lab: streamlab.Lab, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(), make_group()
    _send(lab, topic, {0: 3})
    _commit(lab, group, {TopicPartition(topic, 0): 1})
    lab.start_history(interval=0.05, topics=[topic], groups=[group])  # returns at once
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if len(lab.lag_history(group)) >= 3:
                break
        except GroupIdNotFoundError:
            pass  # the first sample is not there yet
        time.sleep(0.05)
    history = lab.lag_history(group)
    assert len(history) >= 3 and set(history["lag"]) == {2}
    assert history["time"].is_monotonic_increasing
    sampler = lab._history
    assert sampler is not None and sampler.running
    lab.close()
    assert not sampler.running


def test_a_sample_without_names_takes_every_topic_and_listed_group(
    lab: streamlab.Lab, backend: str, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic, group = make_topic(partitions=3), make_group()
    _send(lab, topic, {0: 1, 2: 5})
    _commit(lab, group, {TopicPartition(topic, 2): 3})
    lab.sample_history(now=T0)
    assert lab.throughput_history(topic)["end_offset"].tolist() == [1, 0, 5]
    if backend == "kafka-mock":  # librdkafka's mock cluster cannot list groups: name them
        with pytest.raises(GroupIdNotFoundError):
            lab.lag_history(group)
        lab.sample_history(groups=[group], now=T0)
    assert lab.lag_history(group)[["partition", "lag"]].values.tolist() == [[2, 2]]
