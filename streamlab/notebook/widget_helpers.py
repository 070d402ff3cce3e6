"""What every live widget shares: the :class:`LiveWidget` base (a state, a view, a ticker),
:class:`StateWidget` for one that draws one state object, and the small HTML and
ipywidgets helpers the views are drawn with.

Separate from the widgets so that :mod:`.topic_widgets`, :mod:`.group_widgets`,
:mod:`.dashboard` and :mod:`.share_widgets` build on it without importing one another.
The names keep their leading underscore: they are the notebook layer's own, not API.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import ipywidgets as w

from streamlab.errors import ClosedError, StreamlabError
from streamlab.notebook.ticker import Ticker

CELL = "padding:2px 6px;border-bottom:1px solid #e0e0e0;text-align:left;font-size:12px;white-space:nowrap"
MONO = "font-family:var(--jp-code-font-family,monospace)"


def escape(value: Any) -> str:
    return html.escape(str(value))


def table_html(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (for cells that are HTML already)."""
    head = "".join(f"<th style='{CELL}'>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='{CELL}'>{c if raw else escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    table = (
        f"<table style='border-collapse:collapse;{MONO}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )
    return f"<div style='overflow-x:auto;max-width:100%'>{table}</div>"


def size_text(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def clip_text(value: Any, width: int) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def field_layout(width: str, label: str) -> dict[str, Any]:
    """Layout and style keywords for a labelled input of a given width."""
    return {"layout": w.Layout(width=width), "style": {"description_width": label}}


def title_html(text: str) -> str:
    return f"<div style='font-weight:600;font-size:14px;margin:4px 0'>{escape(text)}</div>"


def update(widget: Any, **values: Any) -> None:
    """Assign traits only when they change (every assignment is a message to the browser)."""
    for name, value in values.items():
        if getattr(widget, name) != value:
            setattr(widget, name, value)


def keep_options(dropdown: Any, options: tuple[Any, ...]) -> None:
    """New options for a dropdown, keeping the user's pick where it is still there."""
    if tuple(dropdown.options) != options:
        picked = dropdown.value
        dropdown.options = options
        values = [o[1] if isinstance(o, tuple) else o for o in options]
        if picked in values:
            dropdown.value = picked


def wrap_row(children: Sequence[Any], *, gap: str = "8px") -> Any:
    """A row of views that wraps onto the next line when the notebook is too narrow for
    them side by side (a fixed 50% each cut off the lag table's columns)."""
    return w.HBox(list(children), layout=w.Layout(flex_flow="row wrap", align_items="flex-start", grid_gap=gap))


def half_box(min_width: str = "540px") -> Any:
    """The layout of one of two views in a :func:`wrap_row`: half the row, or all of it
    when half would be narrower than ``min_width``."""
    return w.Layout(flex="1 1 " + min_width, min_width=min_width, max_width="100%", overflow="auto")


CLOSED_MESSAGE = (
    "this Lab was closed (lab.close() ran), so this widget cannot reach the broker any more: "
    "connect again and make a new widget (in a tutorial: run it again from the top)"
)


def bound(text: str) -> int | str | None:
    text = text.strip()
    return None if not text else int(text) if text.isdigit() else text


class LiveWidget:
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
        text = CLOSED_MESSAGE if isinstance(exc, ClosedError) else str(exc)
        update(self.status, value=f"<span style='color:#b00020'>{escape(type(exc).__name__)}: {escape(text)}</span>")
        return True

    def _guarded(self, action: Callable[[], Any]) -> None:
        """Run what a button or text box asked for: a failure (a closed Lab, a bad input)
        shows in the widget's status line instead of raising into the browser's log,
        where nobody sees it."""
        if self._lab_closed():  # say so, before a closed Lab's parts fail in their own words
            self._failed(ClosedError(CLOSED_MESSAGE))
            return
        try:
            action()
        except StreamlabError as exc:
            self._failed(exc)

    def _titled(self, title: str, *children: Any) -> Any:
        """The view's usual shape: a title, ``children``, the status line."""
        return w.VBox([w.HTML(title_html(title)), *children, self.status])

    def _redraw_after(self, change: Callable[[], Any]) -> None:
        """Change the state (a selection, a filter) and redraw without pulling from the Lab."""
        with self._lock:
            change()
            self._render()

    def _lab_closed(self) -> bool:
        lab = getattr(getattr(self, "state", None), "lab", None)
        return getattr(lab, "closed", False) is True

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
        was_running = self.running
        self._ticker.stop()
        with self._lock:
            self._close()
        if was_running:  # a widget that never ticked keeps showing the state it was drawn with
            self._show_stopped()

    def _show_stopped(self) -> None:
        update(self.status, value="<span style='color:#666'>stopped</span>")

    def _close(self) -> None:
        pass

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.view._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)  # stable text: nbval compares it
        return bundle

    def __enter__(self) -> LiveWidget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CompositeWidget(LiveWidget):
    """A widget made of other live widgets (``parts``), refreshed together on one ticker;
    the parts are built with ``autostart=False`` and draw themselves."""

    parts: tuple[LiveWidget, ...]

    def _refresh(self) -> None:
        for part in self.parts:
            part.refresh()

    def _render(self) -> None:
        pass

    def _close(self) -> None:
        for part in self.parts:
            part.stop()

    def _show_stopped(self) -> None:
        super()._show_stopped()
        for part in self.parts:  # they ticked with this one
            part._show_stopped()


class WidgetState(Protocol):
    """What a :class:`StateWidget` draws: a state object of :mod:`.state`."""

    def refresh(self) -> None: ...
    def summary(self) -> str: ...


S = TypeVar("S", bound=WidgetState)


class StateWidget(LiveWidget, Generic[S]):
    """A live widget drawing one state object (``state``): refreshing the widget refreshes
    the state, and the widget's summary is the state's."""

    state: S

    def _refresh(self) -> None:
        self.state.refresh()

    def summary(self) -> str:
        return self.state.summary()


def widget_repr(widget: object, **fields: Any) -> str:
    """``<streamlab.widgets.Name field=value ...>``: stable text, which nbval compares."""
    return f"<streamlab.widgets.{type(widget).__name__} {' '.join(f'{k}={v!r}' for k, v in fields.items())}>"
