"""``streamlab.widgets``: live views of a Lab in Jupyter, built on ipywidgets.

>>> dash = streamlab.widgets.Dashboard(lab, "clicks", "analytics")
>>> dash            # shows it; it refreshes itself in a background thread
>>> dash.stop()     # stops refreshing (and the producer and consumers it started)

Each widget renders a state object from :mod:`streamlab.notebook.state` and has the same
``refresh()``, ``summary()``, ``start()`` and ``stop()``; ``summary()`` is the text a
notebook prints under the widget so that what it shows is also in the saved output.
Updates run in a daemon thread (``interval`` seconds apart), so the kernel stays free.
The share-group views (``ShareGroupView``, ``QueueVsStream``) live in
:mod:`streamlab.notebook.share_widgets` and are reachable here too.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from streamlab.errors import StreamlabError
from streamlab.notebook.consumer_pool import ConsumerPool
from streamlab.notebook.group_state import LagState, RebalanceTimelineState
from streamlab.notebook.producer_state import ProducerPanelState
from streamlab.notebook.state_helpers import LabLike, colors_for
from streamlab.notebook.ticker import Ticker
from streamlab.notebook.topic_state import TailState, TopicBrowserState

if TYPE_CHECKING:
    from streamlab.notebook.share_widgets import QueueVsStream, ShareGroupView

__all__ = [
    "Dashboard",
    "LiveTail",
    "OffsetsLag",
    "ProducerPanel",
    "QueueVsStream",
    "RebalanceTimeline",
    "ShareGroupView",
    "TopicBrowser",
]
_SHARE_VIEWS = ("QueueVsStream", "ShareGroupView")


def __getattr__(name: str) -> Any:
    """The share-group views, from :mod:`.share_widgets`: it builds on this module, so it
    is imported on first use rather than at the top."""
    if name in _SHARE_VIEWS:
        from streamlab.notebook import share_widgets

        return getattr(share_widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SHARE_VIEWS))  # so tab completion offers them too


_CELL = "padding:2px 6px;border-bottom:1px solid #e0e0e0;text-align:left;font-size:12px;white-space:nowrap"
_MONO = "font-family:var(--jp-code-font-family,monospace)"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (for cells that are HTML already)."""
    head = "".join(f"<th style='{_CELL}'>{_esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='{_CELL}'>{c if raw else _esc(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    table = (
        f"<table style='border-collapse:collapse;{_MONO}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )
    return f"<div style='overflow-x:auto;max-width:100%'>{table}</table></div>"


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _clip(value: Any, width: int) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _field(width: str, label: str) -> dict[str, Any]:
    """Layout and style keywords for a labelled input of a given width."""
    return {"layout": w.Layout(width=width), "style": {"description_width": label}}


def _title(text: str) -> str:
    return f"<div style='font-weight:600;font-size:14px;margin:4px 0'>{_esc(text)}</div>"


def _set(widget: Any, **values: Any) -> None:
    """Assign traits only when they change (every assignment is a message to the browser)."""
    for name, value in values.items():
        if getattr(widget, name) != value:
            setattr(widget, name, value)


def _keep(dropdown: Any, options: tuple[Any, ...]) -> None:
    """New options for a dropdown, keeping the user's pick where it is still there."""
    if tuple(dropdown.options) != options:
        picked = dropdown.value
        dropdown.options = options
        values = [o[1] if isinstance(o, tuple) else o for o in options]
        if picked in values:
            dropdown.value = picked


def _bound(text: str) -> int | str | None:
    text = text.strip()
    return None if not text else int(text) if text.isdigit() else text


class _Live:
    """What every widget shares: a state object, a view and a ticker refreshing both."""

    def __init__(self, *, interval: float, autostart: bool) -> None:
        self.status = w.HTML()
        self._lock = threading.RLock()
        self._ticker = Ticker(self.refresh, interval, name=f"streamlab-{type(self).__name__}", on_error=self._failed)
        self.view: w.Box = w.VBox()
        self._autostart = autostart

    def _begin(self) -> None:
        """Call at the end of a subclass ``__init__``: first render, then live updates."""
        try:
            self.refresh()
        except StreamlabError as exc:
            self._failed(exc)
        if self._autostart:
            self.start()

    def _failed(self, exc: BaseException) -> bool:
        _set(self.status, value=f"<span style='color:#b00020'>{_esc(type(exc).__name__)}: {_esc(exc)}</span>")
        return True

    def refresh(self) -> None:
        """Pull from the Lab now and redraw."""
        with self._lock:
            self._refresh()
            self._render()

    def _refresh(self) -> None:
        raise NotImplementedError

    def _render(self) -> None:
        raise NotImplementedError

    def summary(self) -> str:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._ticker.running

    def start(self) -> None:
        """Refresh every ``interval`` seconds in a background thread."""
        self._ticker.start()

    def stop(self) -> None:
        """Stop refreshing and release what the widget opened (consumers, producers)."""
        self._ticker.stop()
        with self._lock:
            self._close()
        _set(self.status, value="<span style='color:#666'>stopped</span>")

    def _close(self) -> None:
        pass

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.view._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)  # stable text: nbval compares it
        return bundle

    def __enter__(self) -> _Live:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# producer panel ---------------------------------------------------------------------------
class ProducerPanel(_Live):
    """Compose and send a record, or run a generator replaying the clickstream at a rate."""

    def __init__(
        self,
        lab: LabLike,
        topic: str,
        *,
        interval: float = 0.5,
        autostart: bool = True,
        data: pd.DataFrame | None = None,
    ) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = ProducerPanelState(lab, topic)
        self.data = data
        wide, narrow = _field("290px", "60px"), _field("230px", "80px")
        self.key = w.Text(description="key", placeholder="(none)", **wide)
        self.value = w.Textarea(value='{"event": "page_view", "page": "/"}', description="value", **wide)
        self.headers = w.Text(description="headers", placeholder='{"source": "notebook"}', **wide)
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.result = w.HTML()
        self.rate = w.BoundedFloatText(value=20, min=0.1, max=100_000, description="records/s", **narrow)
        self.limit = w.BoundedIntText(value=1000, min=1, max=10_000_000, description="records", **narrow)
        self.original_times = w.Checkbox(value=False, description="original event times", indent=False)
        self.run_button = w.ToggleButton(description="Start generator", icon="play")
        self.progress = w.IntProgress(min=0, max=1, value=0, description="generated", **narrow)
        self.recent = w.HTML()
        self._rendering = False
        self.send_button.on_click(lambda _: self.send())
        self.run_button.observe(self._toggle, names="value")
        self.view = w.VBox([
            w.HTML(_title(f"Produce to {topic}")),
            w.HBox([w.VBox([self.key, self.value, self.headers, w.HBox([self.send_button, self.result])]),
                    w.VBox([self.rate, self.limit, self.original_times, self.run_button, self.progress])]),
            self.recent, self.status,
        ])  # fmt: skip
        self._begin()

    def send(self) -> None:
        """Send what the text boxes hold."""
        try:
            sent = self.state.send_text(self.value.value, self.key.value, self.headers.value)
        except (StreamlabError, ValueError) as exc:
            _set(self.result, value=f"<span style='color:#b00020'>{_esc(exc)}</span>")
            return
        _set(self.result, value=f"sent to <b>partition {sent.partition}</b> at <b>offset {sent.offset}</b>")
        self.refresh()

    def _toggle(self, change: dict[str, Any]) -> None:
        if self._rendering or change["new"] == self.state.running:
            return
        if change["new"]:
            self.state.start(self.rate.value, data=self.data, limit=self.limit.value,
                             timestamp="ts" if self.original_times.value else None)  # fmt: skip
            self.start()
        else:
            self.state.stop()
        self.refresh()

    def _refresh(self) -> None:
        pass  # the state changes as records are sent; rendering reads it

    def _render(self) -> None:
        s = self.state
        self._rendering = True
        try:
            _set(self.run_button, description="Stop generator" if s.running else "Start generator",
                 icon="stop" if s.running else "play", value=s.running)  # fmt: skip
        finally:
            self._rendering = False
        _set(self.progress, max=max(s.target or 1, 1), value=s.generated)
        rows = [(x.partition, x.offset, x.key, _clip(x.value, 40)) for x in reversed(s.sent)][:5]
        _set(self.recent, value=_table(["partition", "offset", "key", "value"], rows) if rows else "")
        if s.error:
            _set(self.status, value=f"<span style='color:#b00020'>{_esc(s.error)}</span>")

    def _close(self) -> None:
        self.state.close()

    def summary(self) -> str:
        return self.state.summary()

    def __repr__(self) -> str:
        return f"<streamlab.widgets.ProducerPanel topic={self.state.topic!r}>"


# live tail --------------------------------------------------------------------------------
class LiveTail(_Live):
    """The newest records of a topic, per partition, filtered on key and value."""

    def __init__(
        self,
        lab: LabLike,
        topic: str,
        filter: str | None = None,
        *,
        per_partition: int = 5,
        interval: float = 1.0,
        autostart: bool = True,
    ) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = TailState(lab, topic, per_partition=per_partition, filter=filter)
        self.filter = w.Text(value=filter or "", description="filter", placeholder="text in key or value",
                             continuous_update=False)  # fmt: skip
        self.filter.observe(lambda ch: self.state.set_filter(ch["new"] or None), names="value")
        self.filter.observe(lambda _: self._render(), names="value")
        self.body = w.HTML()
        self.view = w.VBox([w.HTML(_title(f"Live tail of {topic}")), self.filter, self.body, self.status])
        self._begin()

    def _refresh(self) -> None:
        self.state.refresh()

    def _render(self) -> None:
        blocks = []
        for p, records in self.state.newest().items():
            rows = [
                (r.offset, r.time.strftime("%Y-%m-%d %H:%M:%S"), r.key, _clip(r.value, 48)) for r in reversed(records)
            ]
            end = self.state.ends.get(p, 0)
            blocks.append(f"<div style='margin:4px 0'><b>partition {p}</b> (end offset {end})"
                          + _table(["offset", "time (UTC)", "key", "value"], rows) + "</div>")  # fmt: skip
        _set(self.body, value="".join(blocks) or "<i>no partitions</i>")

    def _close(self) -> None:
        self.state.close()

    def summary(self) -> str:
        return self.state.summary()

    def __repr__(self) -> str:
        return f"<streamlab.widgets.LiveTail topic={self.state.topic!r}>"


# topic browser ----------------------------------------------------------------------------
_ALL = -1  # the partition dropdown's "all" (a None value would show as no selection)


class TopicBrowser(_Live):
    """Topics, partitions, offsets, sizes and retention; a slice of records to pandas."""

    def __init__(
        self, lab: LabLike, topic: str | None = None, *, interval: float = 2.0, autostart: bool = True
    ) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = TopicBrowserState(lab, topic)
        self.topics = w.HTML()
        self.topic = w.Dropdown(description="topic", options=[])
        self.partition = w.Dropdown(description="partition", options=[("all", _ALL)], value=_ALL)
        self.start_at = w.Text(description="from", placeholder="offset or ISO time")
        self.end_at = w.Text(description="to", placeholder="offset or ISO time")
        self.show = w.Button(description="Show records", icon="search")
        self.export = w.Button(description="To DataFrame", icon="table")
        self.partitions = w.HTML()
        self.preview = w.HTML()
        self.exported = w.HTML()
        self.dataframe: pd.DataFrame | None = None
        self._shown: tuple[str | None, int | None] | None = None
        self._rendering = False
        self.show.on_click(lambda _: self._select())
        self.topic.observe(lambda _: None if self._rendering else self._select(new_topic=True), names="value")
        self.export.on_click(lambda _: self.to_dataframe())
        self.view = w.VBox([
            w.HTML(_title("Topics")), self.topics,
            w.HBox([self.topic, self.partition]), w.HBox([self.start_at, self.end_at]),
            w.HBox([self.show, self.export, self.exported]), self.partitions, self.preview, self.status,
        ])  # fmt: skip
        self._begin()

    def _select(self, *, new_topic: bool = False) -> None:
        try:
            with self._lock:
                partition = None if new_topic or self.partition.value == _ALL else self.partition.value
                self.state.select(self.topic.value, partition, _bound(self.start_at.value), _bound(self.end_at.value))
                self._render()
        except StreamlabError as exc:
            self._failed(exc)

    def select(
        self, topic: str | None = None, partition: int | None = None, start: Any = None, end: Any = None
    ) -> None:
        """Choose the slice from code (the same as the dropdowns and text boxes)."""
        with self._lock:
            self.state.select(topic, partition, start, end)
            self._render()

    def to_dataframe(self) -> pd.DataFrame:
        """The selected slice as a DataFrame (also kept in ``.dataframe``)."""
        self.dataframe = self.state.to_dataframe()
        _set(self.exported, value=f"<code>.dataframe</code>: {len(self.dataframe):,} rows")
        return self.dataframe

    def _refresh(self) -> None:
        self.state.refresh()

    def _render(self) -> None:
        s = self.state
        rows = [(t.name, t.partitions, f"{t.records:,}", _size(t.bytes), t.retention_ms, t.retention_bytes,
                 t.cleanup_policy) for t in s.topics]  # fmt: skip
        headers = ["topic", "partitions", "records", "bytes", "retention.ms", "retention.bytes", "cleanup.policy"]
        _set(self.topics, value=_table(headers, rows))
        names = tuple(t.name for t in s.topics)
        choices = (("all", _ALL), *((str(p.partition), p.partition) for p in s.partitions))
        chosen = (s.topic, s.partition)
        self._rendering = True
        try:
            if chosen != self._shown:  # the selection changed in code: show it (else keep what the user picked)
                self._shown = chosen
                self.topic.options, self.partition.options = names, choices
                self.topic.value, self.partition.value = s.topic, _ALL if s.partition is None else s.partition
            else:
                _keep(self.topic, names)
                _keep(self.partition, choices)
        finally:
            self._rendering = False
        prows = [(p.partition, p.log_start, p.end, p.records, "-" if p.bytes is None else f"{p.bytes:,}")
                 for p in s.partitions]  # fmt: skip
        _set(self.partitions, value=_table(["partition", "log start", "end", "records", "bytes"], prows))
        preview = s.preview.drop(columns=[c for c in ("headers",) if c in s.preview.columns])
        html_table = preview.to_html(index=False, max_cols=10, na_rep="", border=0) if len(preview) else ""
        _set(self.preview, value=f"<div style='overflow-x:auto;max-width:100%;font-size:12px'>{html_table}</div>")

    def summary(self) -> str:
        return self.state.summary()

    def __repr__(self) -> str:
        return f"<streamlab.widgets.TopicBrowser topic={self.state.topic!r}>"


# offsets and lag --------------------------------------------------------------------------
_LEGEND = (("#c8c8c8", "removed by retention"), ("#4c9f70", "consumed (committed)"), ("#f28e2b", "lag"))


def _bar(log_start: int, committed: int | None, end: int, scale: int) -> str:
    done = log_start if committed is None else max(committed, log_start)
    parts = [(log_start, _LEGEND[0][0]), (done - log_start, _LEGEND[1][0]), (end - done, _LEGEND[2][0])]
    segs = "".join(f"<div style='width:{100 * n / scale:.2f}%;background:{color}'></div>" for n, color in parts if n)
    return f"<div style='display:flex;width:160px;height:14px;background:#f4f4f4'>{segs}</div>"


class OffsetsLag(_Live):
    """Per partition: log start, committed offset and end as bars, lag in records and time."""

    def __init__(self, lab: LabLike, topic: str, group: str, *, interval: float = 1.0, autostart: bool = True) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = LagState(lab, topic, group)
        self.body = w.HTML()
        self.view = w.VBox([w.HTML(_title(f"Offsets and lag: {group} on {topic}")), self.body, self.status])
        self._begin()

    def _refresh(self) -> None:
        self.state.refresh()

    def _render(self) -> None:
        rows = self.state.rows
        scale = max([r.end for r in rows] + [1])
        table = _table(["partition", "offsets", "log start", "committed", "end", "lag", "time lag"], [
            (f"partition {r.partition}", _bar(r.log_start, r.committed, r.end, scale), r.log_start,
             "-" if r.committed is None else r.committed, r.end, f"{r.lag:,}",
             "-" if r.time_lag is None else r.time_lag)
            for r in rows
        ], raw=True)  # fmt: skip
        legend = " ".join(f"<span style='display:inline-block;width:10px;height:10px;background:{c}'></span> {t}"
                          for c, t in _LEGEND)  # fmt: skip
        total = f"<div>total lag: <b>{self.state.total_lag:,}</b> records</div>"
        _set(self.body, value=table + f"<div style='font-size:11px;margin-top:4px'>{legend}</div>" + total)

    def summary(self) -> str:
        return self.state.summary()

    def __repr__(self) -> str:
        return f"<streamlab.widgets.OffsetsLag topic={self.state.topic!r} group={self.state.group!r}>"


# rebalance timeline -----------------------------------------------------------------------
class RebalanceTimeline(_Live):
    """A group's generations over time: who owned which partition and why it changed.

    The slider steps through generations; the buttons run consumers of the group inside
    this kernel (``topic`` is needed for them) to cause rebalances: Add joins a member,
    Stop closes one (it leaves), Crash silences one (expelled after its session timeout).
    """

    def __init__(
        self,
        lab: LabLike,
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
        self.slider.observe(self._slide, names="value")
        self.add.on_click(lambda _: self._act(self.state.add_consumer))
        self.stop_one.on_click(lambda _: self._act(self.state.stop_consumer))
        self.crash.on_click(lambda _: self._act(self.state.crash_consumer))
        self.view = w.VBox([w.HTML(_title(f"Rebalance timeline: {group}")), self.header, self.grid, self.slider,
                            self.detail, w.HBox([self.add, self.stop_one, self.crash]), self.pool_view,
                            self.status])  # fmt: skip
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
        try:
            action()
        except StreamlabError as exc:
            self._failed(exc)
        self.refresh()

    def _slide(self, change: dict[str, Any]) -> None:
        if self._rendering:
            return
        newest = change["new"] >= len(self.state.generations) - 1
        with self._lock:
            self.state.select(None if newest else change["new"])
            self._render()

    def select(self, index: int | None) -> None:
        """Step to ``generations[index]`` (None: follow the newest)."""
        with self._lock:
            self.state.select(index)
            self._render()

    def _refresh(self) -> None:
        self.state.refresh()

    def _render(self) -> None:
        s = self.state
        colors = colors_for([m for g in s.generations for m in g.owners.values()] + list(s.members))
        members = "".join(
            f"<div><span style='color:{colors.get(m, '#333')}'>&#9632;</span> <b>{_esc(m)}</b>: "
            f"{_esc(', '.join(str(tp) for tp in tps))}</div>"
            for m, tps in s.members.items()
        )  # fmt: skip
        generation = "?" if s.generation is None else s.generation
        head = (f"<div>state <b>{_esc(s.state)}</b>, generation <b>{generation}</b>, assignor "
                f"<b>{_esc(s.assignor or '-')}</b>, {s.member_count} member(s)</div>")  # fmt: skip
        _set(self.header, value=head + members)
        if s.history_error:
            _set(self.grid, value=f"<div style='color:#8a6d00'>{_esc(s.history_error)}</div>")
            _set(self.detail, value="")
        else:
            _set(self.grid, value=self._grid(colors))
            current = s.current
            self._rendering = True
            try:
                top = max(len(s.generations) - 1, 0)
                options = tuple((str(g.generation), i) for i, g in enumerate(s.generations)) or (("-", 0),)
                if tuple(self.slider.options) != options:
                    self.slider.options = options
                _set(self.slider, value=top if s.selected is None else min(s.selected, top))
            finally:
                self._rendering = False
            if current is None:
                _set(self.detail, value="<i>no generations yet: add a consumer</i>")
            else:
                moved = ", ".join(f"{tp} from {m}" for m, tp in current.revoked) or "nothing"
                given = ", ".join(f"{tp} to {m}" for m, tp in current.assigned) or "nothing"
                at = current.time.strftime("%H:%M:%S.%f")[:-3]
                _set(self.detail, value=(
                    f"<div><b>generation {current.generation}</b> at {at} UTC: {_esc(current.reason)}</div>"
                    f"<div>revoked: {_esc(moved)}</div><div>assigned: {_esc(given)}</div>"))  # fmt: skip
        pool = s.pool.summary() if s.pool is not None else "no consumers of the group running in this notebook"
        _set(self.pool_view, value=f"<pre style='margin:2px 0'>{_esc(pool)}</pre>")

    def _grid(self, colors: dict[str, str]) -> str:
        gens = self.state.generations[-16:]
        tps = sorted({tp for g in gens for tp in g.owners} | {tp for g in gens for _, tp in g.revoked})
        if not gens:
            return ""
        current = self.state.current
        head = ["partition"] + [f"{'▶' if g is current else ''}g{g.generation}" for g in gens]
        rows = []
        for tp in tps:
            cells = [f"partition {tp.partition}" if len({t.topic for t in tps}) == 1 else _esc(tp)]
            for g in gens:
                owner = g.owners.get(tp)
                style = f"background:{colors[owner]};color:white;padding:0 4px" if owner else "color:#aaa"
                cells.append(f"<span style='{style}'>{_esc(owner or '-')}</span>")
            rows.append(cells)
        return _table(head, rows, raw=True)

    def _close(self) -> None:
        self.state.close()

    def summary(self) -> str:
        return self.state.summary()

    def __repr__(self) -> str:
        return f"<streamlab.widgets.RebalanceTimeline group={self.state.group!r}>"


# dashboard --------------------------------------------------------------------------------
class Dashboard(_Live):
    """Producer, lag, rebalance timeline, live tail and topic browser for one topic and group,
    refreshed together by one background thread."""

    def __init__(
        self,
        lab: LabLike,
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
        self.tail = LiveTail(lab, topic, autostart=False, per_partition=3)
        self.browser = TopicBrowser(lab, topic, autostart=False)
        self.parts: tuple[_Live, ...] = (self.lag, self.timeline, self.producer, self.tail, self.browser)
        half = w.Layout(width="50%", padding="0 8px")
        for part in self.parts[:4]:
            part.view.layout = half
        self.view = w.VBox([
            w.HTML(_title(f"streamlab dashboard: topic {topic}, group {group}")),
            w.HBox([self.lag.view, self.timeline.view]), w.HBox([self.producer.view, self.tail.view]),
            self.browser.view, self.status,
        ])  # fmt: skip
        self._begin()

    def _refresh(self) -> None:
        for part in self.parts:
            part.refresh()

    def _render(self) -> None:
        pass

    def _close(self) -> None:
        for part in self.parts:
            part.stop()

    def summary(self) -> str:
        return "\n".join(part.summary() for part in (self.lag, self.timeline, self.tail, self.producer))

    def __repr__(self) -> str:
        return f"<streamlab.widgets.Dashboard topic={self.lag.state.topic!r} group={self.lag.state.group!r}>"
