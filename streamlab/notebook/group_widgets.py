"""Widgets on one consumer group: :class:`OffsetsLag` (committed offsets and lag per
partition) and :class:`RebalanceTimeline` (generations and ownership, with buttons that
run consumers in the kernel to cause rebalances).

Each draws a state from :mod:`.group_state`.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from streamlab.errors import StreamlabError
from streamlab.front.lab import Lab
from streamlab.notebook.consumer_pool import ConsumerPool
from streamlab.notebook.group_state import LagState, RebalanceTimelineState
from streamlab.notebook.state_helpers import colors_for, format_time_lag
from streamlab.notebook.widget_helpers import StateWidget, escape, table_html, update, widget_repr

__all__ = ["OffsetsLag", "RebalanceTimeline"]


# offsets and lag --------------------------------------------------------------------------
LAG_LEGEND = (("#c8c8c8", "removed by retention"), ("#4c9f70", "consumed (committed)"), ("#f28e2b", "lag"))


def lag_bar(log_start: int, committed: int | None, end: int, scale: int) -> str:
    done = log_start if committed is None else max(committed, log_start)
    parts = [(log_start, LAG_LEGEND[0][0]), (done - log_start, LAG_LEGEND[1][0]), (end - done, LAG_LEGEND[2][0])]
    segs = "".join(f"<div style='width:{100 * n / scale:.2f}%;background:{color}'></div>" for n, color in parts if n)
    return f"<div style='display:flex;width:110px;height:14px;background:#f4f4f4'>{segs}</div>"


class OffsetsLag(StateWidget[LagState]):
    """Per partition: log start, committed offset and end as bars, lag in records and time."""

    def __init__(self, lab: Lab, topic: str, group: str, *, interval: float = 1.0, autostart: bool = True) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = LagState(lab, topic, group)
        self.body = w.HTML()
        self.view = self._titled(f"Offsets and lag: {group} on {topic}", self.body)
        self._begin()

    def _render(self) -> None:
        rows = self.state.rows
        scale = max([r.end for r in rows] + [1])
        table = table_html(["partition", "offsets", "log start", "committed", "end", "lag", "time lag"], [
            (f"partition {r.partition}", lag_bar(r.log_start, r.committed, r.end, scale), f"{r.log_start:,}",
             "-" if r.committed is None else f"{r.committed:,}", f"{r.end:,}", f"{r.lag:,}",
             format_time_lag(r.time_lag))
            for r in rows
        ], raw=True)  # fmt: skip
        legend = " ".join(f"<span style='display:inline-block;width:10px;height:10px;background:{c}'></span> {t}"
                          for c, t in LAG_LEGEND)  # fmt: skip
        total = f"<div>total lag: <b>{self.state.total_lag:,}</b> records</div>"
        update(self.body, value=table + f"<div style='font-size:11px;margin-top:4px'>{legend}</div>" + total)

    def __repr__(self) -> str:
        return widget_repr(self, topic=self.state.topic, group=self.state.group)


# rebalance timeline -----------------------------------------------------------------------
class RebalanceTimeline(StateWidget[RebalanceTimelineState]):
    """A group's generations over time: who owned which partition and why it changed.

    The slider steps through generations; the buttons run consumers of the group inside
    this kernel (``topic`` is needed for them) to cause rebalances: Add joins a member,
    Stop closes one (it leaves), Crash silences one (expelled after its session timeout).
    """

    def __init__(
        self,
        lab: Lab,
        group: str,
        topic: str | None = None,
        *,
        interval: float = 0.5,
        autostart: bool = True,
        **consumer_config: Any,
    ) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = RebalanceTimelineState(lab, group, topic, **consumer_config)
        self.header = w.HTML()
        self.grid = w.HTML()
        self.slider = w.SelectionSlider(description="generation", options=(("-", 0),), value=0)
        self.detail = w.HTML()
        self.add = w.Button(description="Add consumer", icon="user-plus", disabled=topic is None)
        self.stop_one = w.Button(description="Stop consumer", icon="user-minus", disabled=topic is None)
        self.crash = w.Button(description="Crash consumer", icon="bolt", disabled=topic is None)
        self.pool_view = w.HTML()
        self._rendering = False
        self.slider.observe(lambda change: self._guarded(lambda: self._slide(change)), names="value")
        self.add.on_click(lambda _: self._act(self.state.add_consumer))
        self.stop_one.on_click(lambda _: self._act(self.state.stop_consumer))
        self.crash.on_click(lambda _: self._act(self.state.crash_consumer))
        self.view = self._titled(f"Rebalance timeline: {group}", self.header, self.grid, self.slider, self.detail,
                                 w.HBox([self.add, self.stop_one, self.crash]), self.pool_view)  # fmt: skip
        self._begin()

    @property
    def pool(self) -> ConsumerPool | None:
        return self.state.pool

    def add_consumer(self, client_id: str | None = None, *, wait: bool = True) -> str:
        """What *Add consumer* does; ``wait`` until the group has settled."""
        name = self.state.add_consumer(client_id)
        self._settled(wait)
        return name

    def stop_consumer(self, client_id: str | None = None, *, wait: bool = True) -> str | None:
        """What *Stop consumer* does (default: the newest member); ``wait`` until settled."""
        name = self.state.stop_consumer(client_id)
        self._settled(wait)
        return name

    def crash_consumer(self, client_id: str | None = None, *, wait: bool = True) -> str | None:
        """What *Crash consumer* does; ``wait`` until the group has expelled it and settled."""
        name = self.state.crash_consumer(client_id)
        self._settled(wait)
        return name

    def _settled(self, wait: bool, timeout: float = 30) -> None:
        if wait and self.state.pool is not None and not self.state.pool.settle(timeout):
            raise StreamlabError(f"group {self.state.group!r} did not settle within {timeout} s")
        self.refresh()

    def _act(self, action: Any) -> None:
        def act_and_redraw() -> None:
            action()
            self.refresh()

        self._guarded(act_and_redraw)

    def _slide(self, change: dict[str, Any]) -> None:
        if self._rendering:
            return
        newest = change["new"] >= len(self.state.generations) - 1
        self._redraw_after(lambda: self.state.select(None if newest else change["new"]))

    def select(self, index: int | None) -> None:
        """Step to ``generations[index]`` (None: follow the newest)."""
        self._redraw_after(lambda: self.state.select(index))

    def _render(self) -> None:
        s = self.state
        colors = colors_for([m for g in s.generations for m in g.owners.values()] + list(s.members))
        members = "".join(
            f"<div><span style='color:{colors.get(m, '#333')}'>&#9632;</span> <b>{escape(m)}</b>: "
            f"{escape(', '.join(str(tp) for tp in tps))}</div>"
            for m, tps in s.members.items()
        )  # fmt: skip
        generation = "?" if s.generation is None else s.generation
        head = (f"<div>state <b>{escape(s.state)}</b>, {s.generation_name} <b>{generation}</b>, assignor "
                f"<b>{escape(s.assignor or '-')}</b>, {s.member_count} member(s)</div>")  # fmt: skip
        update(self.header, value=head + members)
        if s.history_error:
            update(self.grid, value=f"<div style='color:#8a6d00'>{escape(s.history_error)}</div>")
            update(self.detail, value="")
        else:
            update(self.grid, value=self._grid(colors))
            current = s.current
            self._rendering = True
            try:
                top = max(len(s.generations) - 1, 0)
                options = tuple((str(g.generation), i) for i, g in enumerate(s.generations)) or (("-", 0),)
                if tuple(self.slider.options) != options:
                    self.slider.options = options
                update(self.slider, value=top if s.selected is None else min(s.selected, top))
            finally:
                self._rendering = False
            if current is None:
                update(self.detail, value="<i>no generations yet: add a consumer</i>")
            else:
                moved = ", ".join(f"{tp} from {m}" for m, tp in current.revoked) or "nothing"
                given = ", ".join(f"{tp} to {m}" for m, tp in current.assigned) or "nothing"
                at = current.time.strftime("%H:%M:%S.%f")[:-3]
                update(self.detail, value=(
                    f"<div><b>generation {current.generation}</b> at {at} UTC: {escape(current.reason)}</div>"
                    f"<div>revoked: {escape(moved)}</div><div>assigned: {escape(given)}</div>"))  # fmt: skip
        pool = s.pool.summary() if s.pool is not None else "no consumers of the group running in this notebook"
        update(self.pool_view, value=f"<pre style='margin:2px 0'>{escape(pool)}</pre>")

    def _grid(self, colors: dict[str, str]) -> str:
        gens = self.state.generations[-16:]
        tps = sorted({tp for g in gens for tp in g.owners} | {tp for g in gens for _, tp in g.revoked})
        if not gens:
            return ""
        current = self.state.current
        head = ["partition"] + [f"{'▶' if g is current else ''}g{g.generation}" for g in gens]
        rows = []
        for tp in tps:
            cells = [f"partition {tp.partition}" if len({t.topic for t in tps}) == 1 else escape(tp)]
            for g in gens:
                owner = g.owners.get(tp)
                style = f"background:{colors[owner]};color:white;padding:0 4px" if owner else "color:#aaa"
                cells.append(f"<span style='{style}'>{escape(owner or '-')}</span>")
            rows.append(cells)
        return table_html(head, rows, raw=True)

    def _close(self) -> None:
        self.state.close()

    def __repr__(self) -> str:
        return widget_repr(self, group=self.state.group)
