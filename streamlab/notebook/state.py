"""What the notebook widgets show, as plain Python objects.

Each state object pulls from a Lab in ``refresh()`` and says what it holds in
``summary()``, a short deterministic text that tests and nbval compare. The widgets in
:mod:`streamlab.notebook.widgets` only render these objects, so everything here runs and
is tested without a browser or a kernel.

Any Lab-like object works (the embedded :class:`streamlab.Lab`, a ``kafka://`` Lab): the
states use only the client API (``topics``, ``offsets``, ``producer``, ``consumer``,
``groups``, ``describe_group``, ``lag``, ``replay``). Rebalance history is recorded by the
embedded broker; elsewhere the timeline shows the current members and says why there is
no history.

The states live in one module per view; this one gathers them under the name notebooks
and user code import them by:

- :mod:`.state_helpers`: :class:`Lab`, member labels and colours
- :mod:`.ticker`: :class:`Ticker`, the background refresh
- :mod:`.topic_state`: :class:`TopicBrowserState`, :class:`TailState`
- :mod:`.group_state`: :class:`LagState`, :class:`RebalanceTimelineState`
- :mod:`.consumer_pool`: :class:`ConsumerPool`
- :mod:`.producer_state`: :class:`ProducerPanelState`
- :mod:`.history_state`: :class:`HistoryState` (lag and throughput over time)
- :mod:`.job_state`: :class:`JobViewState`, :class:`LatestTableState`, :class:`WindowSeriesState`
  (a streaming job and its output topic)
"""

from __future__ import annotations

from streamlab.notebook.consumer_pool import ConsumerPool
from streamlab.notebook.group_state import (
    Generation,
    LagState,
    PartitionLag,
    RebalanceTimelineState,
    generations_from,
)
from streamlab.notebook.history_state import HistoryState
from streamlab.notebook.job_state import JobViewState, LatestTableState, WindowSeriesState
from streamlab.notebook.producer_state import ProducerPanelState, Sent
from streamlab.notebook.state_helpers import PALETTE, colors_for, format_time_lag, member_label
from streamlab.notebook.ticker import Ticker
from streamlab.notebook.topic_state import PartitionInfo, TailState, TopicBrowserState, TopicInfo

__all__ = [
    "PALETTE",
    "ConsumerPool",
    "Generation",
    "HistoryState",
    "JobViewState",
    "LagState",
    "LatestTableState",
    "PartitionInfo",
    "PartitionLag",
    "ProducerPanelState",
    "RebalanceTimelineState",
    "Sent",
    "TailState",
    "Ticker",
    "TopicBrowserState",
    "TopicInfo",
    "WindowSeriesState",
    "colors_for",
    "format_time_lag",
    "generations_from",
    "member_label",
]
