"""What every live widget shares: the :class:`_Live` base (a state, a view, a ticker)
and the small HTML and ipywidgets helpers the views are drawn with.

Separate from the widgets so that :mod:`.topic_widgets`, :mod:`.group_widgets`,
:mod:`.dashboard` and :mod:`.share_widgets` build on it without importing one another.
The names keep their leading underscore: they are the notebook layer's own, not API.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Sequence
from typing import Any

import ipywidgets as w

from streamlab.errors import StreamlabError
from streamlab.notebook.ticker import Ticker

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


class _Composite(_Live):
    """A widget made of other live widgets (``parts``), refreshed together on one ticker;
    the parts are built with ``autostart=False`` and draw themselves."""

    parts: tuple[_Live, ...]

    def _refresh(self) -> None:
        for part in self.parts:
            part.refresh()

    def _render(self) -> None:
        pass

    def _close(self) -> None:
        for part in self.parts:
            part.stop()
