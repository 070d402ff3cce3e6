"""Share-group views: the state object, the live widgets and the plot, driven without a
browser by real share consumers; and share groups in ``lab.groups()``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from matplotlib.colors import to_hex

import streamlab
from streamlab.client.share_consumer import ShareConsumer
from streamlab.errors import StreamlabError, UnsupportedOperationError
from streamlab.notebook import plot
from streamlab.notebook.share_state import (
    NOT_YET_DELIVERED_COLOR,
    STATE_COLORS,
    InFlight,
    ShareGroupState,
    ShareViewUnavailableError,
)
from streamlab.notebook.share_widgets import ShareGroupView


def _consumer(lab: streamlab.Lab, topic: str, client_id: str, group: str = "q") -> ShareConsumer:
    return lab.share_consumer(topic, group=group, client_id=client_id, auto_offset_reset="earliest",
                              acknowledgement_mode="explicit", delivery_count_limit=2,
                              dead_letter_topic=f"{group}-dlq")  # fmt: skip


class Queue:
    """Eight jobs on one partition, worked on by members ``a`` and ``b`` of share group ``q``
    (delivery limit 2) until offsets 0..4 are in every state."""

    def __init__(self, lab: streamlab.Lab, topic: str) -> None:
        with lab.producer() as p:
            for i in range(8):
                p.send(topic, value={"job": i})
        self.a, self.b = _consumer(lab, topic, "a"), _consumer(lab, topic, "b")
        self.held_by_a = self.a.poll(timeout=1, max_records=4)  # 0..3, first delivery
        assert [r.offset for r in self.held_by_a] == [0, 1, 2, 3]
        self.a.acknowledge(self.held_by_a[1], "accept")
        self.a.acknowledge(self.held_by_a[2], "release")  # back, delivered once
        self.a.acknowledge(self.held_by_a[3], "reject")  # archived at once
        self.a.commit()
        self.held_by_b = self.b.poll(timeout=1, max_records=2)  # 2 again, and 4
        assert [(r.offset, self.b.delivery_count(r)) for r in self.held_by_b] == [(2, 2), (4, 1)]
        self.b.acknowledge(self.held_by_b[0], "release")  # second delivery: archived at the limit
        self.b.commit()

    def close(self) -> None:
        self.a.close()
        self.b.close()


@pytest.fixture
def queue(lab: streamlab.Lab, make_topic: Callable[..., str]) -> Iterator[Queue]:
    q = Queue(lab, make_topic(partitions=1))
    yield q
    q.close()


# state ------------------------------------------------------------------------------------
def test_state_counts_rows_and_members_follow_the_group(lab: streamlab.Lab, queue: Queue) -> None:
    topic = queue.a.topics[0]
    state = ShareGroupState(lab, "q")
    state.refresh()
    (p,) = state.partitions
    assert (p.topic, p.partition, p.start_offset, p.end_offset, p.log_start, p.high_watermark) == (topic, 0, 0, 5, 0, 8)
    assert p.not_yet_delivered == 3 and p.hidden == 0
    assert p.counts == state.counts == {"available": 0, "acquired": 2, "acknowledged": 1, "archived": 2}
    rows = [(r.offset, r.state, r.delivery_count, r.owner) for r in p.records]
    assert rows == [(0, "acquired", 1, "a"), (1, "acknowledged", 1, None), (2, "archived", 2, None),
                    (3, "archived", 1, None), (4, "acquired", 1, "b")]  # fmt: skip
    lock = p.records[0].lock_remaining
    assert lock is not None and 25 < lock.total_seconds() <= 30  # lock_ms is 30 s by default
    assert p.records[1].lock_remaining is None
    assert [(m.label, m.held) for m in state.members] == [("a", 1), ("b", 1)]
    assert state.members[0].member_id == queue.a.member_id
    assert (state.delivery_count_limit, state.dead_letter_topic) == (2, "q-dlq")
    assert state.summary().splitlines() == [
        "share group q: 2 member(s), delivery limit 2, dead-letter topic q-dlq",
        "  in flight: 0 available, 2 acquired, 1 acknowledged, 2 archived",
        f"  {topic}[0]: start 0, end 5, log end 8 (3 not yet delivered)",
        "    0 acquired by a 1x, 1 acknowledged 1x, 2 archived 2x, 3 archived 1x, 4 acquired by b 1x",
        "  member a: holds 1",
        "  member b: holds 1",
    ]

    queue.a.acknowledge(queue.held_by_a[0], "accept")  # the start offset moves over 0..3
    queue.a.commit()
    state.refresh()
    (p,) = state.partitions
    assert (p.start_offset, [r.offset for r in p.records]) == (4, [4])
    assert [(m.label, m.held) for m in state.members] == [("a", 0), ("b", 1)]
    queue.b.close()  # its record comes back, delivery count kept; it is no member any more
    state.refresh()
    assert state.partitions[0].records == (InFlight(4, "available", 1),)
    assert [m.label for m in state.members] == ["a"]


def test_state_caps_rows_narrows_to_a_topic_and_labels_members(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    jobs, other = make_topic(partitions=1), make_topic(partitions=2)
    with lab.producer() as p:
        for i in range(30):
            p.send(jobs, value=i)
            p.send(other, value=i, partition=i % 2)
    first = lab.share_consumer([jobs, other], group="wide", client_id="w", auto_offset_reset="earliest")
    second = lab.share_consumer([jobs, other], group="wide", client_id="w", auto_offset_reset="earliest")
    got = first.poll(timeout=1, max_records=25)
    assert len(got) == 25
    state = ShareGroupState(lab, "wide", max_records=3)
    state.refresh()
    assert [p.name for p in state.partitions] == sorted([f"{jobs}[0]", f"{other}[0]", f"{other}[1]"])
    assert [(m.label, m.held) for m in state.members] == [("w", 25), ("w#2", 0)]  # one client id, two members
    for p in state.partitions:
        window = p.end_offset - p.start_offset
        assert len(p.records) == min(window, 3) and p.hidden == max(window - 3, 0)
        assert p.counts["acquired"] == window  # the counts are not capped
    assert sum(p.counts["acquired"] for p in state.partitions) == 25
    capped = next(p for p in state.partitions if p.hidden)
    assert f", ... {capped.hidden:,} more" in state.summary()
    fig = plot.share_states(lab, "wide", max_records=3)
    assert f"{capped.name}\n+{capped.hidden:,} more" in [t.get_text() for t in fig.axes[0].get_yticklabels()]
    drawn = sum(len(p.records) + (p.not_yet_delivered > 0) for p in state.partitions)
    assert len(fig.axes[0].patches) == drawn <= 3 * 3 + 3
    narrow = ShareGroupState(lab, "wide", topic=other)
    narrow.refresh()
    assert [p.partition for p in narrow.partitions] == [0, 1] and {p.topic for p in narrow.partitions} == {other}
    first.close()
    second.close()
    with pytest.raises(streamlab.errors.ConfigError):
        ShareGroupState(lab, "wide", max_records=0)


def test_state_of_a_group_nobody_joined_yet(lab: streamlab.Lab) -> None:
    state = ShareGroupState(lab, "nobody")
    state.refresh()
    assert not state.exists and state.partitions == [] and state.members == []
    assert state.summary() == "share group nobody: no share consumer has joined it yet"


# widgets ----------------------------------------------------------------------------------
def _cells(html: str) -> list[tuple[int, str, int]]:
    found = re.findall(r"data-offset='(\d+)' data-state='(\w+)' data-delivery-count='(\d+)'", html)
    return [(int(o), s, int(n)) for o, s, n in found]


def test_share_group_view_draws_a_cell_per_record_and_refreshes_live(
    lab: streamlab.Lab, queue: Queue, threads_end: None
) -> None:
    assert streamlab.widgets.ShareGroupView is ShareGroupView
    assert "ShareGroupView" in dir(streamlab.widgets)
    view = ShareGroupView(lab, "q", interval=0.05)
    assert view.running and repr(view) == "<streamlab.widgets.ShareGroupView group='q'>"
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"] == repr(view) and "application/vnd.jupyter.widget-view+json" in bundle
    assert _cells(view.body.value) == [(0, "acquired", 1), (1, "acknowledged", 1), (2, "archived", 2),
                                       (3, "archived", 1), (4, "acquired", 1)]  # fmt: skip
    assert f"background:{STATE_COLORS['archived']}" in view.body.value
    assert "3 not yet delivered" in view.body.value and "held by a" in view.body.value
    assert "<b>2</b> acquired" in view.header.value and "q-dlq" in view.header.value
    legend = view.view.children[3].value
    assert all(f"background:{c}'></span> {s}" in legend for s, c in STATE_COLORS.items())
    assert re.findall(r"<td[^>]*>(\w+)</td><td[^>]*>(\d+)</td>", view.members.value) == [("a", "1"), ("b", "1")]
    assert view.summary() == view.state.summary()

    queue.a.acknowledge(queue.held_by_a[0], "accept")
    queue.a.commit()
    deadline = time.monotonic() + 5
    while _cells(view.body.value) != [(4, "acquired", 1)]:  # its ticker picks the change up by itself
        assert time.monotonic() < deadline, view.body.value
        time.sleep(0.02)
    view.stop()
    assert not view.running and "stopped" in view.status.value


def test_queue_vs_stream_shows_the_share_group_beside_the_classic_group(
    lab: streamlab.Lab, queue: Queue, threads_end: None
) -> None:
    topic = queue.a.topics[0]
    stream = lab.consumer([topic], group="readers", auto_offset_reset="earliest", enable_auto_commit=False)
    while len(stream.poll(timeout=0.5, max_records=3)) < 3:
        pass
    stream.commit()
    stream.close()
    both = streamlab.widgets.QueueVsStream(lab, topic, share_group="q", classic_group="readers", interval=0.05)
    assert repr(both) == f"<streamlab.widgets.QueueVsStream topic={topic!r} share_group='q' classic_group='readers'>"
    assert both.running and not both.share.running and not both.stream.running  # one ticker for both
    (row,) = [c for c in both.view.children if hasattr(c, "children")]
    assert list(row.children) == [both.share.view, both.stream.view]
    assert len(_cells(both.share.body.value)) == 5 and "total lag: <b>5</b>" in both.stream.body.value
    text = both.summary()
    assert "share group q: 2 member(s)" in text and f"group readers on topic {topic}: lag 5 records in total" in text
    both.stop()
    assert not both.running and "stopped" in both.share.status.value and "stopped" in both.stream.status.value


# plot -------------------------------------------------------------------------------------
def _legend(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_share_states_plot_colours_states_and_shows_delivery_counts(
    lab: streamlab.Lab, queue: Queue, capsys: pytest.CaptureFixture[str]
) -> None:
    fig = plot.share_states(lab, "q", summary=True)
    top, bottom = fig.axes
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() == "offset" and ax.get_ylabel()
    assert top.get_title() == "In-flight records of share group q"
    assert _legend(top) == [*STATE_COLORS, "not yet delivered"]
    assert _legend(bottom) == ["delivery count limit (2)"]
    color_state = {c: s for s, c in STATE_COLORS.items()} | {NOT_YET_DELIVERED_COLOR: "not yet delivered"}
    cells = sorted((b.get_x(), b.get_width(), color_state[to_hex(b.get_facecolor())]) for b in top.patches)
    assert cells == [
        (-0.5, 1, "acquired"),
        (0.5, 1, "acknowledged"),
        (1.5, 1, "archived"),
        (2.5, 1, "archived"),
        (3.5, 1, "acquired"),
        (4.5, 3, "not yet delivered"),
    ]  # each record centred on its offset
    assert [t.get_text() for t in top.texts] == ["1", "1", "2", "1", "1"]  # delivery counts, by offset
    bars = sorted((b.get_x() + b.get_width() / 2, b.get_height()) for b in bottom.patches)
    assert bars == [(0, 1), (1, 1), (2, 2), (3, 1), (4, 1)]
    (limit,) = bottom.get_lines()
    assert list(limit.get_ydata()) == [2, 2]
    assert [t.get_text() for t in top.get_yticklabels()] == ["partition 0\n3 not yet delivered"]
    assert capsys.readouterr().out.strip() == plot.summary_of(fig) == _summary(lab, "q")
    fig.canvas.draw()  # renders without error

    empty = plot.share_states(lab, "nobody")
    assert all(ax.get_legend() is not None for ax in empty.axes)
    assert plot.summary_of(empty) == "share group nobody: no share consumer has joined it yet"
    empty.canvas.draw()


def _summary(lab: streamlab.Lab, group: str) -> str:
    state = ShareGroupState(lab, group)
    state.refresh()
    return state.summary()


# kafka:// and lab.groups() ----------------------------------------------------------------
def test_views_need_the_embedded_broker(threads_end: None) -> None:
    from streamlab.kafka.mock_cluster import MockCluster

    with MockCluster(brokers=1) as cluster, streamlab.connect(f"kafka://{cluster.bootstrap}") as kafka_lab:
        for make in (
            lambda: ShareGroupState(kafka_lab, "q"),
            lambda: streamlab.widgets.ShareGroupView(kafka_lab, "q"),
            lambda: streamlab.widgets.QueueVsStream(kafka_lab, "jobs", share_group="q", classic_group="c"),
            lambda: plot.share_states(kafka_lab, "q"),
        ):
            with pytest.raises(ShareViewUnavailableError, match="need the embedded broker") as raised:
                make()
            assert isinstance(raised.value, UnsupportedOperationError) and isinstance(raised.value, StreamlabError)


def test_lab_groups_lists_share_groups_with_their_type(lab: streamlab.Lab, queue: Queue) -> None:
    topic = queue.a.topics[0]
    classic = lab.consumer([topic], group="readers", auto_offset_reset="earliest")
    classic.poll(timeout=1)
    groups = lab.groups()
    assert list(groups.columns) == ["group", "type", "state", "generation", "members", "assignor"]
    rows = groups.set_index("group")
    assert rows.loc["q", ["type", "state", "members", "assignor"]].tolist() == ["share", "Stable", 2, ""]
    assert rows["generation"].isna().to_dict() == {"q": True, "readers": False}  # a share group has none
    assert rows.loc["readers", ["type", "state", "members"]].tolist() == ["classic", "Stable", 1]
    assert rows.loc["readers", "generation"] >= 1
    classic.close()
    queue.close()
    rows = lab.groups().set_index("group")
    assert rows.loc["q", ["type", "state", "members"]].tolist() == ["share", "Empty", 0]
    assert rows.loc["readers", "type"] == "classic"
