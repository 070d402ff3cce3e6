"""Widgets on a streaming job (``lab.start_job``): :class:`JobView` (its state, lag, records
in and out per second, state-store size, late records, errors), and its output topic as a
:class:`LiveTable` (latest row per key) and a :class:`LivePlot` (a line per key over the
windows, the newest window drawn as it fills). Each draws a state from :mod:`.job_state`.

The plot is inline SVG, as the history charts are (:mod:`.history_widgets`): redrawn every
second it costs a string, and a saved notebook keeps it as text.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as w
import pandas as pd

from streamlab.front.job_metrics import JobMetrics
from streamlab.front.jobs import Job
from streamlab.front.lab import Lab
from streamlab.notebook.job_state import JobViewState, LatestTableState, TimeUnit, WindowSeriesState
from streamlab.notebook.state_helpers import PALETTE
from streamlab.notebook.widget_helpers import StateWidget, escape, table_html, update, widget_repr

__all__ = ["JobView", "LivePlot", "LiveTable", "window_chart_svg"]

_RUNNING, _DONE, _FAILED = "#2ca02c", "#666666", "#b00020"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}/s"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


class JobView(StateWidget[JobViewState]):
    """A running (or finished) job: state, return code and why it ended; its group's lag
    per partition; records in (committed) and out (written to its outputs) and per second;
    its state directory's size; late records dropped; error lines. ``job.metrics()`` gives
    the same numbers as data."""

    def __init__(self, job: Job, *, interval: float = 1.0, autostart: bool = True) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = JobViewState(job)
        self.header = w.HTML()
        self.numbers = w.HTML()
        self.lag = w.HTML()
        self.errors = w.HTML()
        self.view = self._titled(f"Job: {job.name}", self.header, self.numbers, self.lag, self.errors)
        self._begin()

    def _render(self) -> None:
        m = self.state.metrics
        if m is None:
            return
        update(self.header, value=self._header(m))
        rows = [
            ("records in (committed)", _count(m.consumed), _rate(m.in_per_s)),
            ("records out (windows emitted)", _count(m.emitted), _rate(m.out_per_s)),
            ("state store", "-" if m.state_bytes is None else f"{m.state_bytes:,} bytes", m.state_dir or ""),
            ("late records dropped", f"{m.late_records:,}", ""),
        ]
        update(self.numbers, value=table_html(["", "total", "rate / where"], rows))
        if m.lag is None:
            update(self.lag, value="<div style='color:#666'>no group= given: no lag</div>")
        elif m.lag.empty:
            update(self.lag, value=f"<div style='color:#666'>group {escape(m.group)} has committed nothing yet</div>")
        else:
            lag_rows = [(t, int(p), _count(int(c)), _count(int(e)), _count(int(n))) for t, p, c, e, n in
                        zip(m.lag["topic"], m.lag["partition"], m.lag["committed"], m.lag["end_offset"], m.lag["lag"],
                            strict=True)]  # fmt: skip
            total = f"<div>total lag: <b>{m.total_lag:,}</b> records</div>"
            update(self.lag, value=table_html(["topic", "partition", "committed", "end", "lag"], lag_rows) + total)
        lines = list(m.errors) or (list(m.stderr[-5:]) if m.failed else [])
        box = "".join(f"{escape(line)}\n" for line in lines[-10:])
        style = f"color:{_FAILED};font-size:11px;margin:2px 0;white-space:pre-wrap"
        update(self.errors, value=f"<pre style='{style}'>{box}</pre>" if lines else "")

    @staticmethod
    def _header(m: JobMetrics) -> str:
        if m.state == "running":
            return f"<div><b style='color:{_RUNNING}'>running</b> for {m.runtime_s:,.0f} s</div>"
        color = _FAILED if m.failed or m.errors else _DONE
        return (f"<div><b style='color:{color}'>exited</b> with {m.returncode} after {m.runtime_s:,.1f} s "
                f"(ended by {escape(m.ended_by)})</div>")  # fmt: skip

    def __repr__(self) -> str:
        return widget_repr(self, job=self.state.job.name)


class LiveTable(StateWidget[LatestTableState]):
    """``topic`` as a table updating while the cell is idle: the latest record per ``key``
    (the record key by default; a list of columns, e.g. ``["key", "start"]`` for one row
    per window). ``times`` names columns of epoch times in ``time_unit`` to show as UTC times
    (``["start", "end"]`` for Quix's windows). ``rows`` limits what is drawn, not what
    :meth:`to_dataframe` returns."""

    def __init__(
        self, lab: Lab, topic: str, *, key: str | Sequence[str] = "key", columns: Sequence[str] | None = None,
        times: Sequence[str] = (), time_unit: TimeUnit = "ms", rows: int = 20, interval: float = 1.0,
        autostart: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(interval=interval, autostart=autostart)
        self.state = LatestTableState(lab, topic, key=key, times=times, time_unit=time_unit)
        self.columns, self.rows = (list(columns) if columns else None), rows
        self.body = w.HTML()
        self.view = self._titled(f"Live table: {topic}", self.body)
        self._begin()

    def _render(self) -> None:
        table = self.state.to_dataframe()
        if table.empty:
            update(self.body, value=f"<i>{escape(self.state.waiting or 'no records yet')}</i>")
            return
        shown = table[self.columns] if self.columns else table.drop(columns=["partition", "offset"])
        more = len(shown) - self.rows
        note = f"<div style='font-size:11px;color:#666'>{more:,} more rows</div>" if more > 0 else ""
        update(self.body, value=table_html(list(shown.columns), shown.head(self.rows).astype(str).values.tolist())
               + f"<div style='font-size:11px'>{len(table):,} key(s), {self.state.read:,} records read</div>"
               + note)  # fmt: skip

    def to_dataframe(self) -> pd.DataFrame:
        """What the table holds: one row per key, sorted by the key columns."""
        return self.state.to_dataframe()

    def _close(self) -> None:
        self.state.close()

    def summary(self) -> str:
        return self.state.summary(rows=self.rows, columns=self.columns)

    def __repr__(self) -> str:
        return widget_repr(self, topic=self.state.topic, key=self.state.key)


class LivePlot(StateWidget[WindowSeriesState]):
    """A windowed aggregation's output topic as lines updating while the cell is idle:
    ``y`` per window start ``x`` for each ``by`` (e.g. revenue per 5 minutes per page), the
    newest window of each line dashed as it fills. Quix Streams' window rows (``start``,
    ``end``, ``value``) are the defaults; ``max_lines`` and ``max_windows`` bound what is
    drawn, not what :meth:`to_dataframe` returns."""

    def __init__(
        self, lab: Lab, topic: str, *, x: str = "start", y: str = "value.value", by: str = "key",
        time_unit: TimeUnit | None = "ms", title: str | None = None, unit: str = "", max_lines: int = 8,
        max_windows: int = 48, interval: float = 1.0, autostart: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(interval=interval, autostart=autostart)
        self.state = WindowSeriesState(lab, topic, x=x, y=y, by=by, time_unit=time_unit)
        self.title = title or f"{y} per {x} by {by} ({topic})"
        self.unit, self.max_lines, self.max_windows = unit, max_lines, max_windows
        self.chart = w.HTML()
        self.view = self._titled(f"Live plot: {topic}", self.chart)
        self._begin()

    def _render(self) -> None:
        data = self.state.to_dataframe()
        s = self.state
        totals = data.groupby(s.by)[s.y].sum().sort_values(ascending=False, kind="stable") if len(data) else None
        names = [] if totals is None else list(totals.index[: self.max_lines])
        lines = []
        for i, name in enumerate(sorted(names, key=str)):
            rows = data[data[s.by] == name].tail(self.max_windows)
            lines.append((str(name), list(rows[s.x]), [float(v) for v in rows[s.y]], PALETTE[i % len(PALETTE)]))
        empty = s.table.waiting or "no windows yet"
        update(self.chart, value=window_chart_svg(lines, title=self.title, unit=self.unit, empty=empty))

    def to_dataframe(self) -> pd.DataFrame:
        """The plotted data: ``by``, ``x``, ``y`` and ``current`` (the newest window of its line)."""
        return self.state.to_dataframe()

    def _close(self) -> None:
        self.state.close()

    def __repr__(self) -> str:
        return widget_repr(self, topic=self.state.topic, y=self.state.y, by=self.state.by)


_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 560, 190, 60, 12, 8, 20


def window_chart_svg(
    lines: Sequence[tuple[str, list[object], list[float], str]], *, title: str, unit: str = "",
    empty: str = "no windows yet",
) -> str:  # fmt: skip
    """An SVG chart of ``lines`` (label, x values, y values, colour): solid through the
    closed windows, dashed to the newest one (still filling), which is a hollow dot."""
    drawn = [line for line in lines if line[1]]
    head = f"<div style='font-size:12px;font-weight:600;margin-top:4px'>{escape(title)}</div>"
    if not drawn:
        return head + f"<div style='font-size:12px;color:#888;height:{_H}px'>{escape(empty)}</div>"
    xs = sorted({x for line in drawn for x in line[1]}, key=_position)
    lo, hi = _position(xs[0]), _position(xs[-1])
    top = max(max(line[2]) for line in drawn)
    scale = top if top > 0 else 1.0
    width, height = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(x: object) -> float:
        return _LEFT + (width * (_position(x) - lo) / (hi - lo) if hi > lo else width / 2)

    def py(v: float) -> float:
        return _TOP + height * (1 - max(v, 0.0) / scale)

    marks = []
    for _label, x, y, color in drawn:
        points = [f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, y, strict=True)]
        if len(points) > 2:
            closed = " ".join(points[:-1])
            marks.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.6' points='{closed}'/>")
        if len(points) > 1:
            marks.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.6' stroke-dasharray='4,3' "
                         f"points='{' '.join(points[-2:])}'/>")  # fmt: skip
        for point in points[:-1]:
            cx, cy = point.split(",")
            marks.append(f"<circle cx='{cx}' cy='{cy}' r='2' fill='{color}'/>")
        cx, cy = points[-1].split(",")
        marks.append(f"<circle cx='{cx}' cy='{cy}' r='3.5' fill='white' stroke='{color}' stroke-width='1.6'/>")
    text = "font-size='10' fill='#555' font-family='sans-serif'"
    axes = (
        f"<line x1='{_LEFT}' y1='{_TOP + height}' x2='{_LEFT + width}' y2='{_TOP + height}' stroke='#999'/>"
        f"<line x1='{_LEFT}' y1='{_TOP}' x2='{_LEFT}' y2='{_TOP + height}' stroke='#999'/>"
        f"<text x='{_LEFT - 4}' y='{_TOP + 8}' text-anchor='end' {text}>{_value(top)}</text>"
        f"<text x='{_LEFT - 4}' y='{_TOP + height}' text-anchor='end' {text}>0</text>"
        f"<text x='{_LEFT - 4}' y='{_TOP + height / 2 + 4}' text-anchor='end' {text}>{escape(unit)}</text>"
        f"<text x='{_LEFT}' y='{_H - 4}' {text}>{escape(_x_text(xs[0]))}</text>"
        f"<text x='{_LEFT + width}' y='{_H - 4}' text-anchor='end' {text}>{escape(_x_text(xs[-1]))}</text>"
    )
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' viewBox='0 0 {_W} {_H}'>"
           f"{axes}{''.join(marks)}</svg>")  # fmt: skip
    legend = " ".join(f"<span style='white-space:nowrap'><span style='color:{color}'>&#9632;</span> "
                      f"{escape(label)}</span>" for label, _x, _y, color in drawn)  # fmt: skip
    legend += " <span style='white-space:nowrap;color:#555'>&#9675; dashed: newest window, still filling</span>"
    return head + f"<div style='max-width:100%;overflow-x:auto'>{svg}</div><div style='font-size:11px'>{legend}</div>"


def _position(x: object) -> float:
    if isinstance(x, pd.Timestamp):
        return x.value / 1e9
    return float(x)  # type: ignore[arg-type]


def _x_text(x: object) -> str:
    return f"{x:%Y-%m-%d %H:%M} UTC" if isinstance(x, pd.Timestamp) else f"{x:,}"


def _value(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 or v == int(v) else f"{v:,.1f}"
