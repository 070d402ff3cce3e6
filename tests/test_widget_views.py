"""What the notebook views show agrees with itself: time lags read as people read them,
the live tail's end offsets are read after its records, buttons on a closed Lab say so,
and two views side by side wrap instead of cutting each other off."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import streamlab
from streamlab import TopicPartition
from streamlab.notebook.state import LagState, TailState, format_time_lag
from streamlab.notebook.widget_helpers import CLOSED_MESSAGE

T0 = 1_767_571_200_000  # 2026-01-05T00:00Z


def _send(lab: streamlab.Lab, topic: str, offsets: range) -> None:
    with lab.producer() as p:
        for i in offsets:
            p.send(topic, value={"i": i}, key=f"k{i}", partition=0, timestamp=T0 + i * 1000)


@pytest.mark.parametrize(
    ("lag", "text"),
    [
        (None, "-"),
        (timedelta(0), "0 s"),
        (timedelta(milliseconds=20), "0 s"),
        (timedelta(milliseconds=1200), "1.2 s"),
        (timedelta(seconds=5), "5 s"),
        (timedelta(seconds=59.94), "59.9 s"),
        (timedelta(minutes=3, seconds=12.5), "3m 12s"),
        (timedelta(hours=4, minutes=5, seconds=59), "4h 05m"),
        (timedelta(days=2, hours=23, minutes=54, seconds=16.582), "2d 23h 54m"),
        (timedelta(seconds=-1.5), "-1.5 s"),
    ],
)
def test_time_lags_read_as_people_read_them(lag: timedelta | None, text: str) -> None:
    assert format_time_lag(lag) == text


def test_lag_widget_and_summary_show_the_same_humane_time_lag(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=1)
    _send(lab, topic, range(0, 10))
    _send(lab, topic, range(3 * 86400, 3 * 86400 + 1))  # one record three days later
    consumer = lab.consumer(None, group="g", enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek(TopicPartition(topic, 0), 4)
    consumer.commit()
    consumer.close()
    lag = streamlab.widgets.OffsetsLag(lab, topic, "g", autostart=False)
    row = lag.state.rows[0]
    assert (row.committed, row.end, row.lag) == (4, 11, 7)
    assert "(2d 23h 59m behind)" in lag.summary()  # from offset 4 (T0 + 4 s) to T0 + 3 days
    assert "2d 23h 59m" in lag.body.value and "days," not in lag.body.value
    assert row.committed + row.lag == row.end


class ProducesAfterOffsets:
    """A Lab whose next ``offsets()`` call is followed by records arriving, before anything
    else can happen: the race between reading end offsets and polling, made certain."""

    def __init__(self, lab: streamlab.Lab, topic: str) -> None:
        self._lab, self._topic = lab, topic
        self.arriving: range | None = None

    def offsets(self, topic: str) -> Any:
        found = self._lab.offsets(topic)
        if self.arriving is not None:
            arriving, self.arriving = self.arriving, None
            _send(self._lab, self._topic, arriving)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lab, name)


def test_tail_header_counts_the_records_it_shows(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    _send(lab, topic, range(0, 5))
    racing = ProducesAfterOffsets(lab, topic)
    tail = streamlab.widgets.LiveTail(racing, topic, per_partition=5, autostart=False)  # type: ignore[arg-type]
    assert tail.state.ends == {0: 5} and "(end offset 5)" in tail.body.value
    racing.arriving = range(5, 25)  # 20 records land after the tail read the end offsets
    tail.refresh()
    assert [r.offset for r in tail.state.newest()[0]] == [20, 21, 22, 23, 24]
    assert tail.state.ends == {0: 25}
    assert "(end offset 25)" in tail.body.value
    assert "partition 0 (end offset 25): 5 shown" in tail.summary()
    tail.stop()


def test_tail_state_end_is_never_below_a_shown_record(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    racing = ProducesAfterOffsets(lab, topic)
    state = TailState(racing, topic, per_partition=3)  # type: ignore[arg-type]
    racing.arriving = range(0, 7)
    state.refresh()
    newest = state.newest()[0]
    assert [r.offset for r in newest] == [4, 5, 6] and state.ends[0] == 7
    state.close()


def test_widgets_never_started_keep_their_view_when_stopped(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    _send(lab, topic, range(0, 3))
    tail = streamlab.widgets.LiveTail(lab, topic, autostart=False)
    drawn = tail.body.value
    _send(lab, topic, range(3, 6))  # a later cell produces: the snapshot does not follow
    tail.stop()
    assert tail.body.value == drawn and "offset" in drawn and tail.status.value == ""
    live = streamlab.widgets.LiveTail(lab, topic, interval=60)
    live.stop()
    assert "stopped" in live.status.value


def test_buttons_on_a_closed_lab_say_so_instead_of_raising(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    _send(lab, topic, range(0, 4))
    dash = streamlab.widgets.Dashboard(lab, topic, "g", autostart=False)
    lab.close()  # what the notebook's cleanup cell does

    dash.timeline.add.click()  # Add consumer
    assert CLOSED_MESSAGE in dash.timeline.status.value and "ClosedError" in dash.timeline.status.value
    dash.timeline.crash.click()
    assert CLOSED_MESSAGE in dash.timeline.status.value
    dash.producer.send_button.click()
    assert CLOSED_MESSAGE in dash.producer.status.value
    dash.producer.send()  # from code: the message beside the button
    assert CLOSED_MESSAGE in dash.producer.result.value
    dash.producer.run_button.value = True  # Start generator
    assert CLOSED_MESSAGE in dash.producer.status.value
    assert not dash.producer.run_button.value and not dash.producer.state.running
    dash.tail.filter.value = "k1"
    assert CLOSED_MESSAGE in dash.tail.status.value
    dash.browser.export.click()
    dash.browser.show.click()
    assert CLOSED_MESSAGE in dash.browser.status.value
    dash.stop()


def test_side_by_side_views_wrap_instead_of_clipping(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    dash = streamlab.widgets.Dashboard(lab, topic, "g", autostart=False)
    rows = [child for child in dash.view.children if child.layout.flex_flow == "row wrap"]
    assert len(rows) == 2
    for part in (dash.lag, dash.timeline, dash.producer, dash.tail):
        assert part.view.layout.width is None  # no fixed 50%: a part takes a row of its own when narrow
        assert part.view.layout.min_width == "540px" and part.view.layout.overflow == "auto"
    dash.stop()


def test_lag_rows_add_up_when_records_arrive_between_reads(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    _send(lab, topic, range(0, 5))
    consumer = lab.consumer([topic], group="g", auto_offset_reset="earliest", enable_auto_commit=False)
    read = 0
    while read < 5:  # read up to the end, not on until a poll comes back empty after its timeout
        more = consumer.poll(timeout=5, max_records=100)
        assert more
        read += len(more)
        consumer.commit()
    consumer.close()
    racing = ProducesAfterOffsets(lab, topic)
    state = LagState(racing, topic, "g")  # type: ignore[arg-type]
    racing.arriving = range(5, 8)  # land after the end offsets were read, before the lag
    state.refresh()
    (row,) = state.rows
    assert row.committed == 5 and row.committed + row.lag == row.end
