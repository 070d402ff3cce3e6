"""The :class:`Dashboard`: the topic and group widgets side by side, refreshed together,
with lag and throughput over time from the Lab's history sampler, which it starts.

Separate from the widgets it composes, which stand on their own.
"""

from __future__ import annotations

from typing import Any

from streamlab.errors import ConfigError, StreamlabError
from streamlab.front.lab import Lab
from streamlab.notebook.group_widgets import OffsetsLag, RebalanceTimeline
from streamlab.notebook.history_widgets import HistoryCharts
from streamlab.notebook.topic_widgets import LiveTail, ProducerPanel, TopicBrowser
from streamlab.notebook.widget_helpers import CompositeWidget, LiveWidget, half_box, widget_repr, wrap_row

__all__ = ["Dashboard"]


class Dashboard(CompositeWidget):
    """Producer, lag, rebalance timeline, lag and throughput over time, live tail and topic
    browser for one topic and group, refreshed together by one background thread.

    When it starts (at once unless ``autostart=False``) it starts the Lab's history sampler
    on this topic and group, one sample every ``history_interval`` seconds
    (``lab.start_history``; a Lab has one sampler, so this replaces one started before), and
    :meth:`stop` stops it; the samples stay (``lab.lag_history(group)``).
    ``history_interval=None`` leaves the sampler alone: the charts show what it records."""

    def __init__(
        self,
        lab: Lab,
        topic: str,
        group: str,
        *,
        interval: float = 1.0,
        history_interval: float | None = 1.0,
        history_window: int = 150,
        autostart: bool = True,
        **consumer_config: Any,
    ) -> None:
        if history_interval is not None and (
            isinstance(history_interval, bool) or not isinstance(history_interval, int | float) or history_interval <= 0
        ):
            raise ConfigError(f"history_interval must be seconds > 0 (None: no sampling), got {history_interval!r}")
        super().__init__(interval=interval, autostart=autostart)
        self._lab, self._topic, self._group = lab, topic, group
        self.history_interval = history_interval
        self._sampling = False  # True while the sampler this dashboard started runs
        self.producer = ProducerPanel(lab, topic, autostart=False)
        self.lag = OffsetsLag(lab, topic, group, autostart=False)
        self.timeline = RebalanceTimeline(lab, group, topic, autostart=False, **consumer_config)
        self.tail = LiveTail(lab, topic, autostart=False, per_partition=3, value_width=32)  # fits half the width
        self.browser = TopicBrowser(lab, topic, autostart=False)
        self.history = HistoryCharts(lab, topic, group, window=history_window, sample_interval=history_interval,
                                     autostart=False)  # fmt: skip
        self.parts: tuple[LiveWidget, ...] = (self.lag, self.timeline, self.history, self.producer, self.tail,
                                              self.browser)  # fmt: skip
        for part in (self.lag, self.timeline, self.producer, self.tail):  # side by side where there is room
            part.view.layout = half_box()
        self.view = self._titled(
            f"streamlab dashboard: topic {topic}, group {group}", wrap_row([self.lag.view, self.timeline.view]),
            self.history.view, wrap_row([self.producer.view, self.tail.view]), self.browser.view,
        )  # fmt: skip
        self._begin()

    @property
    def sampling(self) -> bool:
        """True while the history sampler this dashboard started runs."""
        return self._sampling

    def start(self) -> None:
        """Start the history sampler (unless ``history_interval=None``), then refresh every
        ``interval`` seconds."""
        if self.history_interval is not None and not self._sampling:
            try:
                self._lab.start_history(self.history_interval, topics=[self._topic], groups=[self._group])
                self._sampling = True
            except StreamlabError as exc:  # a closed Lab, a deleted topic: said in the status line
                self._failed(exc)
        super().start()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            if self._sampling:
                self._sampling = False
                self._lab.stop_history()

    def summary(self) -> str:
        parts = (self.lag, self.timeline, self.history, self.tail, self.producer)
        return "\n".join(part.summary() for part in parts)

    def __repr__(self) -> str:
        return widget_repr(self, topic=self.lag.state.topic, group=self.lag.state.group)
