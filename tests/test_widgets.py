"""The notebook widgets' Python side: state objects driven directly, widgets without a browser."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import streamlab
from streamlab import TopicPartition
from streamlab.datasets import clickstream
from streamlab.errors import ClosedError, StreamlabError
from streamlab.notebook.state import (
    ConsumerPool,
    LagState,
    ProducerPanelState,
    RebalanceTimelineState,
    TailState,
    Ticker,
    TopicBrowserState,
    member_label,
)

T0 = 1_767_571_200_000  # 2026-01-05T00:00Z


def _fill(lab: streamlab.Lab, topic: str, n: int, *, keys: int = 6) -> None:
    with lab.producer() as p:
        for i in range(n):
            p.send(topic, value={"i": i, "kind": "even" if i % 2 == 0 else "odd"}, key=f"k{i % keys}",
                   timestamp=T0 + i * 1000)  # fmt: skip


class BackendWithoutFiles:
    """The embedded backend, knowing no file sizes (as the kafka:// backend)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def partition_bytes(self, topic: str, partition: int) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


class LabWithoutHistory:
    """A Lab-like object with only the client API (what a kafka:// Lab offers)."""

    def __init__(self, lab: streamlab.Lab) -> None:
        self._lab = lab
        self.backend = BackendWithoutFiles(lab.backend)

    def __getattr__(self, name: str) -> Any:
        if name == "rebalances":
            raise AttributeError(name)
        return getattr(self._lab, name)


# state objects ----------------------------------------------------------------------------
def test_member_label_strips_the_random_part_of_member_ids() -> None:
    assert member_label("alice-1ea84303-567f-42e1-b851-97564d9aa97d") == "alice"
    assert member_label("notebook-2-7-ab12cd34") == "notebook-2"
    assert member_label("rdkafka-custom") == "rdkafka-custom"


def test_topic_browser_shows_partitions_offsets_and_slices(
    lab: streamlab.Lab, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic = make_topic(partitions=3, retention_ms=-1)
    _fill(lab, topic, 60)
    state = TopicBrowserState(lab)
    state.refresh()
    assert state.topic == topic
    ends = lab.offsets(topic)["high_watermark"].tolist()
    assert [(p.partition, p.log_start, p.end) for p in state.partitions] == [(0, 0, ends[0]), (1, 0, ends[1]),
                                                                           (2, 0, ends[2])]  # fmt: skip
    assert all(p.bytes and p.bytes > 0 for p in state.partitions)
    info = next(t for t in state.topics if t.name == topic)
    assert (info.partitions, info.records, info.retention_ms, info.cleanup_policy) == (3, 60, -1, "delete")

    state.select(partition=1, start=2, end=5)
    assert state.preview["offset"].tolist() == [2, 3, 4] and set(state.preview["partition"]) == {1}
    df = state.to_dataframe()
    pd.testing.assert_frame_equal(df, lab.replay(topic, 2, 5, partitions=[1]))
    assert "slice: partition 1, from 2 to 5: showing 3 record(s)" in state.summary()

    state.select(partition=None, start=pd.Timestamp(T0 + 10_000, unit="ms", tz="UTC"), end="2026-01-05T00:00:20Z")
    assert sorted(state.to_dataframe()["i"].tolist()) == list(range(10, 20))

    state.select(partition=None, start=None, end=None)
    whole = state.to_dataframe(chunk_size=7, progress=False)  # many chunks, same rows
    assert len(whole) == 60 and sorted(whole["i"].tolist()) == list(range(60))
    state.to_dataframe(progress=True)
    assert f"replay {topic}" in capsys.readouterr().err  # tqdm's bar (a widget in a notebook)


def test_tail_keeps_the_newest_records_per_partition_and_filters(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    _fill(lab, topic, 40)
    tail = TailState(lab, topic, per_partition=3)

    def newest_three() -> None:
        tail.refresh()
        assert sum(tail.ends.values()) == sum(lab.offsets(topic)["high_watermark"])
        for p, records in tail.newest().items():
            assert [r.offset for r in records] == list(range(tail.ends[p] - 3, tail.ends[p]))

    newest_three()
    _fill(lab, topic, 4)  # new records show up on the next refresh
    newest_three()

    tail.set_filter(key_filter="k1")
    assert {r.key for rs in tail.newest().values() for r in rs} == {"k1"}
    tail.set_filter("odd")
    assert {r.value["kind"] for rs in tail.newest().values() for r in rs} == {"odd"}
    tail.set_filter(lambda r: r.value["i"] >= 38)
    assert sorted(r.value["i"] for rs in tail.newest().values() for r in rs) == [38, 39]
    assert "filter <function>" in tail.summary()

    lab.create_partitions(topic, 3)  # a new partition joins the tail
    with lab.producer() as p:
        p.send(topic, value={"i": 99, "kind": "odd"}, partition=2, timestamp=T0)
    tail.refresh()
    assert [r.offset for r in tail.newest()[2]] == [0]
    tail.close()


def test_lag_state_reads_log_start_committed_end_and_time_lag(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    with lab.producer() as p:
        for i in range(10):
            p.send(topic, value=i, partition=0, timestamp=T0 + i * 1000)
        p.send(topic, value=99, partition=1, timestamp=T0)
    consumer = lab.consumer(None, group="g", enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek(TopicPartition(topic, 0), 4)
    consumer.commit()
    consumer.close()
    state = LagState(lab, topic, "g")
    state.refresh()
    first, second = state.rows
    assert (first.log_start, first.committed, first.end, first.lag) == (0, 4, 10, 6)
    assert first.time_lag is not None and first.time_lag.total_seconds() == 5
    assert (second.committed, second.end, second.lag, second.time_lag) == (None, 1, 1, None)
    assert state.total_lag == 7
    assert state.summary().splitlines() == [
        f"group g on topic {topic}: lag 7 records in total",
        "  partition 0: log start 0, committed 4, end 10, lag 6 records (5 s behind)",
        "  partition 1: log start 0, committed -, end 1, lag 1 records (nothing committed)",
    ]
    state.refresh()
    assert len(state.samples) == 2 and state.samples[-1][1] == {0: 6, 1: 1}


def test_rebalance_timeline_follows_joins_leaves_and_timeouts(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=4)
    _fill(lab, topic, 20)
    state = RebalanceTimelineState(lab, "tl", topic, session_timeout_ms=600)
    state.refresh()
    assert state.summary().splitlines()[0] == "group tl: Empty, generation 0, assignor -, 0 member(s)"
    assert state.add_consumer("a") == "a"
    assert state.pool is not None and state.pool.settle()
    state.add_consumer("b")
    assert state.pool.settle()
    state.refresh()
    assert state.members == {"a": [TopicPartition(topic, 0), TopicPartition(topic, 1)],
                             "b": [TopicPartition(topic, 2), TopicPartition(topic, 3)]}  # fmt: skip
    assert [g.generation for g in state.generations] == [1, 2]
    assert [g.reason for g in state.generations] == ["member a joined", "member b joined"]
    assert state.generations[1].revoked == (("a", TopicPartition(topic, 2)), ("a", TopicPartition(topic, 3)))

    state.add_consumer("c")
    assert state.pool.settle()
    assert state.crash_consumer("c") == "c"  # silent: expelled after session.timeout.ms
    assert state.pool.settle(timeout=15)
    assert state.stop_consumer("b") == "b"  # leaves at once
    assert state.pool.settle()
    state.refresh()
    reasons = [g.reason for g in state.generations]
    assert reasons[2:] == ["member c joined", "member c timed out (session.timeout.ms)", "member b left the group"]
    assert state.members == {"a": [TopicPartition(topic, p) for p in range(4)]}
    assert state.generation == state.generations[-1].generation == 5
    assert state.select(1) is state.generations[1] and state.current is state.generations[1]
    summary = state.summary().splitlines()
    assert summary[0] == "group tl: Stable, generation 5, assignor range, 1 member(s)"
    assert summary[1] == f"  a: {topic}[0], {topic}[1], {topic}[2], {topic}[3]"
    assert summary[2] == "history: 5 generation(s)"
    assert summary[4] == " *generation 2: member b joined -> a: 0, 1; b: 2, 3 (2 revoked, 2 assigned)"
    assert state.pool.consumed["a"] >= 1
    state.close()
    assert state.pool.members == []


def test_rebalance_timeline_degrades_without_the_embedded_broker(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    other = LabWithoutHistory(lab)
    state = RebalanceTimelineState(other, "g", topic)
    state.add_consumer("solo")
    assert state.pool is not None and state.pool.settle()
    state.refresh()
    assert state.members == {"solo": [TopicPartition(topic, 0), TopicPartition(topic, 1)]}
    assert state.generations == [] and state.history_error is not None
    assert "embedded broker only" in state.summary()
    browser = TopicBrowserState(other, topic)
    browser.refresh()
    assert [p.bytes for p in browser.partitions] == [None, None]  # sizes need the embedded broker too
    state.close()


def test_producer_panel_sends_by_hand_and_generates_at_a_rate(
    lab: streamlab.Lab, make_topic: Callable[..., str], threads_end: None
) -> None:
    topic = make_topic(partitions=3)
    state = ProducerPanelState(lab, topic)
    sent = state.send_text('{"event": "purchase", "amount": 9.5}', "user-1", '{"source": "test"}')
    record = lab.replay(topic, headers=True, raw=True).iloc[0]
    assert (sent.partition, sent.offset) == (int(record["partition"]), 0)
    assert record["key"] == "user-1" and record["headers"] == {"source": b"test"}
    assert state.send_text("plain text").value == "plain text"

    data = clickstream(50)
    state.start(rate=2000, data=data, timestamp="ts")
    assert state.wait(timeout=20)
    assert (state.generated, state.target, state.error) == (50, 50, None)
    df = lab.replay(topic)  # a str value among the objects: it stays in "value", the objects are spread
    assert df["value"].dropna().tolist() == ["plain text"]
    generated = df[df["event_id"].notna()].sort_values("event_id")
    assert generated["event_id"].tolist() == data["event_id"].tolist()
    assert generated["timestamp"].tolist() == data["ts"].tolist()  # original event times kept
    assert generated["key"].tolist() == data["user"].tolist()
    last = state.last
    assert last is not None and last.key == data["user"].iloc[-1]
    assert df[(df["partition"] == last.partition) & (df["offset"] == last.offset)]["key"].tolist() == [last.key]
    assert state.summary().splitlines()[0] == (
        f"producer for {topic}: 2 sent by hand; generator stopped, 50 of 50 generated at 2000 records/s"
    )

    state.start(rate=20, data=data)  # slow: stopped half way
    time.sleep(0.3)
    state.stop()
    assert not state.running and 0 < state.generated < 50
    state.close()


def test_ticker_runs_until_stopped_and_stops_on_a_closed_broker() -> None:
    calls: list[int] = []
    ticker = Ticker(lambda: calls.append(1), 0.01)
    ticker.start()
    time.sleep(0.1)
    ticker.stop()
    assert not ticker.running and len(calls) >= 3
    errors: list[BaseException] = []

    def closed() -> None:
        raise ClosedError("gone")

    dead = Ticker(closed, 0.01, on_error=lambda e: errors.append(e) is None)
    dead.start()
    time.sleep(0.2)
    assert not dead.running and len(errors) == 1 and isinstance(dead.error, ClosedError)


def test_consumer_pool_commits_what_it_reads(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    _fill(lab, topic, 30)
    pool = ConsumerPool(lab, topic, "pool")
    pool.add()
    pool.add()
    assert pool.members == ["notebook-1", "notebook-2"] and pool.settle()
    deadline = time.monotonic() + 10
    while sum(pool.consumed.values()) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    pool.close()
    assert sum(pool.consumed.values()) == 30
    assert lab.lag("pool")["lag"].tolist() == [0, 0]


# widgets ----------------------------------------------------------------------------------
def test_widgets_render_refresh_and_stop(lab: streamlab.Lab, make_topic: Callable[..., str], threads_end: None) -> None:
    from streamlab.notebook import widgets

    assert streamlab.widgets is widgets
    topic = make_topic(partitions=3)
    _fill(lab, topic, 30)
    tail = widgets.LiveTail(lab, topic, interval=0.05)
    browser = widgets.TopicBrowser(lab, interval=0.05)
    lag = widgets.OffsetsLag(lab, topic, "w", interval=0.05)
    producer = widgets.ProducerPanel(lab, topic, interval=0.05)
    for widget in (tail, browser, lag, producer):
        assert widget.running
        bundle = widget._repr_mimebundle_()
        assert bundle["text/plain"].startswith("<streamlab.widgets.")
        assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "partition 2" in tail.body.value and "partition 2" in lag.body.value
    assert browser.topic.value == topic and browser.partition.options[-1] == ("2", 2)

    producer.key.value, producer.value.value = "k-new", '{"i": 1000, "kind": "new"}'
    producer.send()
    assert "offset" in producer.result.value and producer.state.by_hand == 1
    deadline = time.monotonic() + 5
    while "k-new" not in tail.body.value and time.monotonic() < deadline:
        time.sleep(0.05)  # the tail's ticker picks the record up by itself
    assert "k-new" in tail.body.value
    tail.filter.value = "new"
    assert {r.key for rs in tail.state.newest().values() for r in rs} == {"k-new"}

    browser.partition.value, browser.start_at.value, browser.end_at.value = 0, "0", "2"
    browser.show.click()
    assert browser.state.preview["offset"].tolist() == [0, 1]
    browser.export.click()
    assert browser.dataframe is not None and len(browser.dataframe) == 2 and "2 rows" in browser.exported.value
    assert browser.to_dataframe()["partition"].tolist() == [0, 0]
    other = make_topic(partitions=1)
    browser.refresh()
    browser.topic.value = other  # picking a topic shows it, all partitions
    assert (browser.state.topic, browser.state.partition, browser.partition.options) == (
        other,
        None,
        (("all", -1), ("0", 0)),
    )

    producer.limit.value, producer.rate.value = 20, 1000
    producer.run_button.value = True  # the toggle starts the generator
    assert producer.state.wait(10) and producer.state.generated == 20
    producer.refresh()
    assert producer.progress.value == 20 and not producer.run_button.value
    for widget in (tail, browser, lag, producer):
        widget.stop()
        assert not widget.running and "stopped" in widget.status.value


def test_rebalance_timeline_widget_buttons_cause_rebalances(
    lab: streamlab.Lab, make_topic: Callable[..., str], threads_end: None
) -> None:
    from streamlab.notebook.widgets import RebalanceTimeline

    topic = make_topic(partitions=2)
    timeline = RebalanceTimeline(lab, "buttons", topic, interval=0.05)
    assert "no generations yet" in timeline.detail.value
    timeline.add.click()
    timeline.add.click()
    assert timeline.pool is not None and timeline.pool.members == ["notebook-1", "notebook-2"]
    assert timeline.pool.settle()
    timeline.refresh()
    assert timeline.slider.options == (("1", 0), ("2", 1)) and timeline.slider.value == 1
    assert "notebook-2" in timeline.grid.value and "partition 1" in timeline.grid.value
    timeline.slider.value = 0
    assert timeline.state.selected == 0 and "generation 1" in timeline.detail.value
    timeline.stop_one.click()
    assert timeline.pool.members == ["notebook-1"] and timeline.pool.settle()
    timeline.refresh()
    assert len(timeline.slider.options) == 3 and "left the group" in timeline.summary()
    timeline.stop()
    assert timeline.pool.members == []


def test_timeline_widget_says_why_it_has_no_history(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    from streamlab.notebook.widgets import RebalanceTimeline

    timeline = RebalanceTimeline(LabWithoutHistory(lab), "g", autostart=False)
    assert "embedded broker only" in timeline.grid.value
    assert timeline.add.disabled  # no topic: no consumers to run
    timeline.stop()


def test_dashboard_combines_the_views_and_stops_them_all(
    lab: streamlab.Lab, make_topic: Callable[..., str], threads_end: None
) -> None:
    topic = make_topic(partitions=3)
    _fill(lab, topic, 30)
    dash = streamlab.widgets.Dashboard(lab, topic, "dash", interval=0.05)
    assert repr(dash) == f"<streamlab.widgets.Dashboard topic={topic!r} group='dash'>"
    dash.timeline.state.add_consumer("alice")
    assert dash.timeline.pool is not None and dash.timeline.pool.settle()
    deadline = time.monotonic() + 10
    while dash.lag.state.total_lag and time.monotonic() < deadline:
        time.sleep(0.05)
    dash.refresh()
    text = dash.summary()
    assert f"group dash on topic {topic}: lag 0 records in total" in text
    assert f"  alice: {topic}[0], {topic}[1], {topic}[2]" in text
    assert f"tail of {topic}" in text and "producer for" in text
    assert dash.running and not any(part.running for part in dash.parts)  # one ticker for all
    dash.stop()
    assert not dash.running and dash.timeline.pool.members == []
    assert dash.producer.state._producer is None  # its producer is closed too


class LabWithoutGroups(LabWithoutHistory):
    """A Lab-like object that cannot list or describe groups (librdkafka's mock cluster)."""

    def groups(self) -> pd.DataFrame:
        raise StreamlabError("ListGroups: Local: Required feature not supported by broker")

    def describe_group(self, group: str) -> pd.DataFrame:
        raise StreamlabError("DescribeGroups: Local: Required feature not supported by broker")


def test_timeline_falls_back_to_its_own_members_without_group_apis(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    state = RebalanceTimelineState(LabWithoutGroups(lab), "blind", topic)
    state.add_consumer("x")
    assert state.pool is not None and state.pool.settle()
    state.add_consumer("y")
    assert state.pool.settle()  # judged by the members' own assignments: every partition once
    state.refresh()
    assert state.members == {"x": [TopicPartition(topic, 0), TopicPartition(topic, 1)],
                             "y": [TopicPartition(topic, 2)]}  # fmt: skip
    lines = state.summary().splitlines()
    assert lines[0] == "group blind: unknown, generation ?, assignor -, 2 member(s)"
    assert lines[3].startswith("note: group state unavailable from this Lab (ListGroups")
    state.close()


@pytest.fixture(params=["serve", "mock-cluster"])
def kafka_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A kafka:// Lab on `streamlab serve`, or on librdkafka's 3-broker mock cluster."""
    pytest.importorskip("confluent_kafka")
    if request.param == "serve":
        log = tmp_path / "serve.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "streamlab.cli.main", "serve", "--data", str(tmp_path / "d"),
                                     "--port", "0"], stdout=out, stderr=out, stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not (found := re.search(r"ready: .* on (\S+),", log.read_text())):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            with streamlab.connect(f"kafka://{found.group(1)}") as opened:
                yield opened
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    else:
        from streamlab.kafka.mock_cluster import MockCluster

        with MockCluster(brokers=3) as cluster, streamlab.connect(f"kafka://{cluster.bootstrap}") as opened:
            yield opened


@pytest.mark.slow
def test_states_and_widgets_over_kafka(kafka_lab: Any, threads_end: None) -> None:
    kafka_lab.create_topic("clicks", partitions=3)
    data = clickstream(300)
    with kafka_lab.producer() as producer:
        producer.send_many("clicks", data, key="user", timestamp="ts")
    ends = kafka_lab.offsets("clicks")["high_watermark"].tolist()

    browser = TopicBrowserState(kafka_lab, "clicks")
    browser.refresh()
    assert [(p.partition, p.end) for p in browser.partitions] == list(enumerate(ends))
    assert browser.topics[0].bytes is None  # a Kafka cluster does not report sizes here
    assert len(browser.to_dataframe()) == 300

    tail = TailState(kafka_lab, "clicks", per_partition=2)
    deadline = time.monotonic() + 20
    while sum(len(r) for r in tail.newest().values()) < 6 and time.monotonic() < deadline:
        tail.refresh()  # a Kafka client fetches in the background
    assert {p: [r.offset for r in rs] for p, rs in tail.newest().items()} == {
        p: [end - 2, end - 1] for p, end in enumerate(ends)
    }
    tail.close()

    timeline = RebalanceTimelineState(kafka_lab, "g", "clicks")
    timeline.add_consumer("a")
    assert timeline.pool is not None and timeline.pool.settle(30) and timeline.pool.catch_up(30)
    timeline.refresh()
    assert timeline.members == {"a": [TopicPartition("clicks", p) for p in range(3)]}
    assert timeline.history_error is not None and timeline.generations == []
    lag = LagState(kafka_lab, "clicks", "g")
    lag.refresh()
    assert [(r.committed, r.end, r.lag) for r in lag.rows] == [(end, end, 0) for end in ends]

    panel = ProducerPanelState(kafka_lab, "clicks")
    panel.start(rate=1000, data=data.head(20), timestamp="ts")
    assert panel.wait(30) and panel.generated == 20 and panel.error is None
    panel.close()
    dash = streamlab.widgets.Dashboard(kafka_lab, "clicks", "g", interval=0.1, history_interval=0.1)
    assert "history: no rebalance history from this Lab" in dash.summary()
    assert dash.sampling  # a kafka:// Lab keeps the samples in memory
    deadline = time.monotonic() + 10
    while dash.history.state.samples < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        dash.refresh()
    assert dash.history.state.samples >= 2 and "records in since the first sample shown: 0" in dash.summary()
    dash.stop()
    assert not dash.sampling
    timeline.close()
