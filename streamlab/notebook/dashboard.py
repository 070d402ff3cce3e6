"""The :class:`Dashboard`: the topic and group widgets side by side, refreshed together.

Separate from the widgets it composes, which stand on their own.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from streamlab.front.lab import Lab
from streamlab.notebook.group_widgets import OffsetsLag, RebalanceTimeline
from streamlab.notebook.topic_widgets import LiveTail, ProducerPanel, TopicBrowser
from streamlab.notebook.widget_helpers import CompositeWidget, LiveWidget, half_box, title_html, wrap_row

__all__ = ["Dashboard"]


class Dashboard(CompositeWidget):
    """Producer, lag, rebalance timeline, live tail and topic browser for one topic and group,
    refreshed together by one background thread."""

    def __init__(
        self,
        lab: Lab,
        topic: str,
        group: str,
        *,
        interval: float = 1.0,
        autostart: bool = True,
        **consumer_config: Any,
    ) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.producer = ProducerPanel(lab, topic, autostart=False)
        self.lag = OffsetsLag(lab, topic, group, autostart=False)
        self.timeline = RebalanceTimeline(lab, group, topic, autostart=False, **consumer_config)
        self.tail = LiveTail(lab, topic, autostart=False, per_partition=3, value_width=32)  # fits half the width
        self.browser = TopicBrowser(lab, topic, autostart=False)
        self.parts: tuple[LiveWidget, ...] = (self.lag, self.timeline, self.producer, self.tail, self.browser)
        for part in self.parts[:4]:  # side by side where there is room, else one under the other
            part.view.layout = half_box()
        self.view = w.VBox([
            w.HTML(title_html(f"streamlab dashboard: topic {topic}, group {group}")),
            wrap_row([self.lag.view, self.timeline.view]), wrap_row([self.producer.view, self.tail.view]),
            self.browser.view, self.status,
        ])  # fmt: skip
        self._begin()

    def summary(self) -> str:
        return "\n".join(part.summary() for part in (self.lag, self.timeline, self.tail, self.producer))

    def __repr__(self) -> str:
        return f"<streamlab.widgets.Dashboard topic={self.lag.state.topic!r} group={self.lag.state.group!r}>"
