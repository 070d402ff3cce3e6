"""``streamlab.widgets``: live views of a Lab in Jupyter, built on ipywidgets.

>>> dash = streamlab.widgets.Dashboard(lab, "clicks", "analytics")
>>> dash            # shows it; it refreshes itself in a background thread
>>> dash.stop()     # stops refreshing (and the producer, consumers and history sampler it started)

Each widget renders a state object from :mod:`streamlab.notebook.state` and has the same
``refresh()``, ``summary()``, ``start()`` and ``stop()``; ``summary()`` is the text a
notebook prints under the widget so that what it shows is also in the saved output.
Updates run in a daemon thread (``interval`` seconds apart), so the kernel stays free.
The share-group views (``ShareGroupView``, ``QueueVsStream``) live in
:mod:`streamlab.notebook.share_widgets` and are reachable here too.

The widgets live in one module per subject; this one gathers them under the name
notebooks and user code reach them by (``streamlab.widgets``):

- :mod:`.widget_helpers`: the ``LiveWidget`` base and the HTML helpers
- :mod:`.topic_widgets`: :class:`ProducerPanel`, :class:`LiveTail`, :class:`TopicBrowser`
- :mod:`.group_widgets`: :class:`OffsetsLag`, :class:`RebalanceTimeline`
- :mod:`.history_widgets`: :class:`HistoryCharts` (lag and throughput over time)
- :mod:`.dashboard`: :class:`Dashboard`
- :mod:`.job_widgets`: :class:`JobView`, :class:`LiveTable`, :class:`LivePlot` (a streaming
  job and its output topic)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamlab.notebook.dashboard import Dashboard
from streamlab.notebook.group_widgets import OffsetsLag, RebalanceTimeline
from streamlab.notebook.history_widgets import HistoryCharts
from streamlab.notebook.job_widgets import JobView, LivePlot, LiveTable
from streamlab.notebook.topic_widgets import LiveTail, ProducerPanel, TopicBrowser

if TYPE_CHECKING:
    from streamlab.notebook.browser import MessageBrowser
    from streamlab.notebook.share_widgets import QueueVsStream, ShareGroupView

__all__ = [
    "Dashboard",
    "HistoryCharts",
    "JobView",
    "LivePlot",
    "LiveTable",
    "LiveTail",
    "MessageBrowser",
    "OffsetsLag",
    "ProducerPanel",
    "QueueVsStream",
    "RebalanceTimeline",
    "ShareGroupView",
    "TopicBrowser",
]
_SHARE_VIEWS = ("QueueVsStream", "ShareGroupView")


def __getattr__(name: str) -> Any:
    """The share-group views, from :mod:`.share_widgets`: imported on first use because
    they pull in modules the other widgets do not need (the ``kafka://`` errors)."""
    if name in _SHARE_VIEWS:
        from streamlab.notebook import share_widgets

        return getattr(share_widgets, name)
    if name == "MessageBrowser":  # imported on first use: it pulls in itables
        from streamlab.notebook.browser import MessageBrowser

        return MessageBrowser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SHARE_VIEWS) | {"MessageBrowser"})  # so tab completion offers them too
