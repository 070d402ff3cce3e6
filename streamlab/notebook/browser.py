"""``MessageBrowser``: page through a topic in a grid, filter it, open one message.

>>> browser = streamlab.widgets.MessageBrowser(lab, "clicks")   # or streamlab.notebook.browser
>>> browser                      # topic, partitions, start, where, search; Prev/Next; a grid
>>> browser.export()             # the page on screen as a DataFrame

The grid is itables' ``ITable`` (DataTables as an anywidget): sortable, searchable within
the page and row-selectable, and installed by ``pip install streamlab[notebook]`` with
nothing to enable in JupyterLab. Every page is one ``lab.browse`` call (see
:class:`~streamlab.notebook.browser_state.MessageBrowserState`, which holds all the state).
Nothing here runs on a timer: a page is read when a control asks for it.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import pandas as pd
from itables.widget import ITable

from streamlab.front.lab import Lab
from streamlab.notebook.browser_state import PAGE_SIZE, MessageBrowserState, MessageDetail

__all__ = ["MessageBrowser"]

_PRE = "margin:0;white-space:pre-wrap;word-break:break-all;font-family:monospace;font-size:12px"


def _parse_partitions(text: str) -> list[int] | None:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        return None
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"partitions are numbers separated by commas, e.g. 0,2; got {text!r}")
    return [int(p) for p in parts]


def _parse_start(text: str) -> int | str | None:
    text = text.strip()
    if not text:
        return None
    body = text.removeprefix("-")
    return int(text) if body.isascii() and body.isdigit() else text


def detail_html(detail: MessageDetail | None) -> str:
    """The detail pane: where the message is, its key, headers and pretty value."""
    if detail is None:
        return "<i>select a row to see the whole message</i>"
    rows = [("topic", detail.topic), ("partition", detail.partition), ("offset", detail.offset),
            ("timestamp", detail.timestamp), ("key", detail.key or "(none)")]  # fmt: skip
    meta = "".join(f"<tr><td><b>{k}</b></td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    headers = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in detail.headers.items())
    return (
        f"<table>{meta}</table><div><b>headers</b></div>"
        + (f"<table>{headers}</table>" if headers else "<div><i>none</i></div>")
        + f"<div><b>value</b></div><pre style='{_PRE}'>{html.escape(detail.value)}</pre>"
        + (f"<div style='color:#b00020'><b>not decoded:</b> {html.escape(detail.error)}</div>" if detail.error else "")
    )


class MessageBrowser:
    """A topic's records, a page at a time, with filters and a detail pane (see module doc)."""

    def __init__(self, lab: Lab, topic: str, *, limit: int = PAGE_SIZE, show_transactions: bool = False) -> None:
        self.state = MessageBrowserState(lab, topic, limit=limit, show_transactions=show_transactions)
        topics = sorted(str(t) for t in lab.topics()["name"])
        self.topic = w.Dropdown(options=topics if topic in topics else [topic, *topics], value=topic,
                                description="topic", layout=w.Layout(width="260px"))  # fmt: skip
        self.partitions = w.Text(placeholder="all, or 0,2", description="partitions", layout=w.Layout(width="200px"))
        self.start = w.Text(placeholder="offset, -N latest, or time", description="start",
                            layout=w.Layout(width="260px"))  # fmt: skip
        self.where = w.Text(placeholder="amount > 10 AND page = 'home'", description="where",
                            layout=w.Layout(width="420px"))  # fmt: skip
        self.search = w.Text(placeholder="text in key or value", description="search", layout=w.Layout(width="300px"))
        self.limit = w.BoundedIntText(
            value=limit, min=1, max=10_000, description="rows", layout=w.Layout(width="150px")
        )
        self.apply_button = w.Button(description="Apply", button_style="primary", icon="filter")
        self.previous_button = w.Button(description="Previous", icon="arrow-left")
        self.next_button = w.Button(description="Next", icon="arrow-right")
        self.status = w.HTML()
        self.grid = ITable(pd.DataFrame(), select=True, paging=False, scrollY="420px", scrollX=True,
                           scrollCollapse=True, classes="display compact nowrap")  # fmt: skip
        self.detail = w.HTML(detail_html(None), layout=w.Layout(width="38%", overflow="auto", max_height="480px"))
        self.apply_button.on_click(lambda _: self.apply())
        self.previous_button.on_click(lambda _: self.previous_page())
        self.next_button.on_click(lambda _: self.next_page())
        for box in (self.where, self.search, self.start, self.partitions):
            # Synced on Enter or on leaving the box, never per keystroke: Enter applies the filters.
            box.continuous_update = False
            box.observe(lambda _: self.apply(), names="value")
        self.grid.observe(self._selected, names="selected_rows")
        self.topic.observe(lambda _: self.apply(), names="value")
        controls = w.VBox([
            w.HBox([self.topic, self.partitions, self.start, self.limit]),
            w.HBox([self.where, self.search, self.apply_button]),
            w.HBox([self.previous_button, self.next_button, self.status]),
        ])  # fmt: skip
        grid_box = w.Box([self.grid], layout=w.Layout(width="62%", overflow="auto"))
        self.view = w.VBox([controls, w.HBox([grid_box, self.detail])])
        self.state.refresh()
        self._render()

    # actions ----------------------------------------------------------------------------
    def apply(self) -> None:
        """Read the controls and show the first page they select."""
        try:
            partitions, start = _parse_partitions(self.partitions.value), _parse_start(self.start.value)
        except ValueError as exc:
            self.state.error = str(exc)
            self._render()
            return
        self.state.apply(topic=self.topic.value, partitions=partitions, start=start, where=self.where.value,
                         search=self.search.value, limit=int(self.limit.value))  # fmt: skip
        self._render()

    def next_page(self) -> None:
        self.state.next_page()
        self._render()

    def previous_page(self) -> None:
        self.state.previous_page()
        self._render()

    def export(self) -> pd.DataFrame:
        """The page on screen as a DataFrame (``lab.browse``'s columns)."""
        return self.state.export()

    def summary(self) -> str:
        return self.state.summary()

    # drawing ----------------------------------------------------------------------------
    def _render(self) -> None:
        self.grid.update(self.state.table(), selected_rows=[])
        self.detail.value = detail_html(None)
        self.previous_button.disabled = not self.state.has_previous
        self.next_button.disabled = not self.state.has_next
        text = html.escape(self.state.summary())
        self.status.value = f"<span style='color:#b00020'>{text}</span>" if self.state.error else text

    def _selected(self, change: dict[str, Any]) -> None:
        rows = change["new"]
        self.detail.value = detail_html(self.state.detail(rows[0]) if rows and rows[0] < len(self.state.page) else None)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.view._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)  # stable text: nbval compares it (the view's repr is its controls)
        return bundle

    def __repr__(self) -> str:
        return f"<streamlab.widgets.MessageBrowser topic={self.state.topic!r}>"
