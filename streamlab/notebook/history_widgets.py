"""The :class:`HistoryCharts` widget: lag over time and throughput over time for one topic
and group, drawn from a :class:`~streamlab.notebook.history_state.HistoryState`.

The charts are inline SVG in an HTML widget rather than matplotlib images: redrawn every
second they cost a string, and a saved notebook's widget state keeps them as text.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as w
import pandas as pd

from streamlab.front.lab import Lab
from streamlab.notebook.history_state import HistoryState, Series
from streamlab.notebook.state_helpers import PALETTE
from streamlab.notebook.widget_helpers import StateWidget, escape, update, widget_repr, wrap_row

__all__ = ["HistoryCharts", "line_chart_svg"]

_IN, _OUT = "#333333", "#f28e2b"
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 460, 150, 52, 8, 8, 20


def _value_text(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 or v == int(v) else f"{v:,.1f}"


def line_chart_svg(
    series: Sequence[tuple[Series, str, bool]], *, title: str, unit: str, empty: str = "no samples yet"
) -> str:
    """An SVG line chart of ``series`` (each with its colour and whether it is dashed) on
    one time axis from 0 up, with the first and last time (UTC) and the peak as labels."""
    drawn = [(s, color, dashed) for s, color, dashed in series if s.times]
    head = f"<div style='font-size:12px;font-weight:600;margin-top:4px'>{escape(title)}</div>"
    if not drawn:
        return head + f"<div style='font-size:12px;color:#888;height:{_H}px'>{escape(empty)}</div>"
    t0 = min(s.times[0] for s, _, _ in drawn)
    t1 = max(s.times[-1] for s, _, _ in drawn)
    span = max((t1 - t0) / pd.Timedelta(seconds=1), 1e-9)
    top = max(max(s.values) for s, _, _ in drawn)
    scale = top if top > 0 else 1.0
    width, height = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(t: pd.Timestamp) -> float:
        return _LEFT + width * ((t - t0) / pd.Timedelta(seconds=1)) / span

    def y(v: float) -> float:
        return _TOP + height * (1 - v / scale)

    lines = []
    for s, color, dashed in drawn:
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(s.times, s.values, strict=True))
        dash = " stroke-dasharray='5,3'" if dashed else ""
        if len(s.times) == 1:  # one point: a dot, a line needs two
            lines.append(f"<circle cx='{x(s.times[0]):.1f}' cy='{y(s.values[0]):.1f}' r='2.5' fill='{color}'/>")
        else:
            lines.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.6'{dash} points='{points}'/>")
    text = "font-size='10' fill='#555' font-family='sans-serif'"
    axes = (
        f"<line x1='{_LEFT}' y1='{_TOP + height}' x2='{_LEFT + width}' y2='{_TOP + height}' stroke='#999'/>"
        f"<line x1='{_LEFT}' y1='{_TOP}' x2='{_LEFT}' y2='{_TOP + height}' stroke='#999'/>"
        f"<line x1='{_LEFT}' y1='{_TOP}' x2='{_LEFT + width}' y2='{_TOP}' stroke='#eee'/>"
        f"<text x='{_LEFT - 4}' y='{_TOP + 8}' text-anchor='end' {text}>{_value_text(top)}</text>"
        f"<text x='{_LEFT - 4}' y='{_TOP + height}' text-anchor='end' {text}>0</text>"
        f"<text x='{_LEFT - 4}' y='{_TOP + height / 2 + 4}' text-anchor='end' {text}>{escape(unit)}</text>"
        f"<text x='{_LEFT}' y='{_H - 4}' {text}>{t0:%H:%M:%S}</text>"
        f"<text x='{_LEFT + width}' y='{_H - 4}' text-anchor='end' {text}>{t1:%H:%M:%S} UTC</text>"
    )
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' viewBox='0 0 {_W} {_H}'>"
           f"{axes}{''.join(lines)}</svg>")  # fmt: skip
    legend = " ".join(
        f"<span style='white-space:nowrap'><span style='display:inline-block;width:14px;height:0;"
        f"border-top:2px {'dashed' if dashed else 'solid'} {color};vertical-align:middle'></span> "
        f"{escape(s.label)}</span>"
        for s, color, dashed in drawn
    )
    return head + f"<div style='max-width:100%;overflow-x:auto'>{svg}</div><div style='font-size:11px'>{legend}</div>"


class HistoryCharts(StateWidget[HistoryState]):
    """Lag over time (records behind, per partition) and throughput over time (records/s
    appended to the topic and committed by the group), from the Lab's history samples.

    It reads samples; it does not take them: ``lab.start_history(...)`` does (the
    :class:`~streamlab.notebook.dashboard.Dashboard` starts it), or ``lab.sample_history()``."""

    def __init__(
        self,
        lab: Lab,
        topic: str,
        group: str,
        *,
        window: int = 150,
        sample_interval: float | None = None,
        interval: float = 1.0,
        autostart: bool = True,
    ) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = HistoryState(lab, topic, group, window=window, interval=sample_interval)
        self.lag_chart = w.HTML()
        self.rate_chart = w.HTML()
        charts = wrap_row([w.Box([self.lag_chart]), w.Box([self.rate_chart])])
        self.view = self._titled(f"History: {group} on {topic}", charts)
        self._begin()

    def _render(self) -> None:
        s = self.state
        lag = [(series, PALETTE[i % len(PALETTE)], False) for i, series in enumerate(s.lag)]
        update(self.lag_chart, value=line_chart_svg(lag, title="Lag over time", unit="records",
                                                     empty="no samples of the group's commits yet"))  # fmt: skip
        rates = [(s.rate_in, _IN, False), (s.rate_out, _OUT, True)]
        update(self.rate_chart, value=line_chart_svg(rates, title="Throughput over time", unit="rec/s",
                                                     empty="rates need two samples"))  # fmt: skip

    def __repr__(self) -> str:
        return widget_repr(self, topic=self.state.topic, group=self.state.group)
