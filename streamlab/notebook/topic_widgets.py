"""Widgets on one topic: :class:`ProducerPanel` writes to it, :class:`LiveTail` follows
its newest records, :class:`TopicBrowser` shows its partitions and slices of records.

Each draws a state from :mod:`.producer_state` or :mod:`.topic_state`.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import pandas as pd

from streamlab.errors import ClosedError, StreamlabError
from streamlab.front.lab import Lab
from streamlab.notebook.producer_state import ProducerPanelState
from streamlab.notebook.state_helpers import short
from streamlab.notebook.topic_state import TailState, TopicBrowserState
from streamlab.notebook.widget_helpers import (
    CLOSED_MESSAGE,
    LiveWidget,
    StateWidget,
    bound,
    escape,
    field_layout,
    keep_options,
    size_text,
    table_html,
    update,
    widget_repr,
    wrap_row,
)

__all__ = ["LiveTail", "ProducerPanel", "TopicBrowser"]


# producer panel ---------------------------------------------------------------------------
class ProducerPanel(LiveWidget):
    """Compose and send a record, or run a generator replaying the clickstream at a rate."""

    def __init__(
        self,
        lab: Lab,
        topic: str,
        *,
        interval: float = 0.5,
        autostart: bool = True,
        data: pd.DataFrame | None = None,
    ) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = ProducerPanelState(lab, topic)
        self.data = data
        wide, narrow = field_layout("280px", "60px"), field_layout("220px", "80px")
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
        self.send_button.on_click(lambda _: self._guarded(self.send))
        self.run_button.observe(self._toggle, names="value")
        # two fixed-width columns that wrap under one another when the panel is narrow; the
        # send result has a line of its own (beside the button it pushed into the next column)
        self.view = self._titled(
            f"Produce to {topic}",
            wrap_row([w.VBox([self.key, self.value, self.headers, self.send_button, self.result],
                              layout=w.Layout(width="290px")),
                       w.VBox([self.rate, self.limit, self.original_times, self.run_button, self.progress],
                              layout=w.Layout(width="230px"))], gap="4px 12px"),
            self.recent,
        )  # fmt: skip
        self._begin()

    def send(self) -> None:
        """Send what the text boxes hold."""
        try:
            sent = self.state.send_text(self.value.value, self.key.value, self.headers.value)
        except (StreamlabError, ValueError) as exc:
            text = CLOSED_MESSAGE if isinstance(exc, ClosedError) else exc
            update(self.result, value=f"<span style='color:#b00020'>{escape(text)}</span>")
            return
        update(self.result, value=f"sent to <b>partition {sent.partition}</b> at <b>offset {sent.offset}</b>")
        self.refresh()

    def _toggle(self, change: dict[str, Any]) -> None:
        if self._rendering or change["new"] == self.state.running:
            return

        def toggle() -> None:
            if change["new"]:
                self.state.start(self.rate.value, data=self.data, limit=self.limit.value,
                                 timestamp="ts" if self.original_times.value else None)  # fmt: skip
                self.start()
            else:
                self.state.stop()

        self._guarded(toggle)
        self.refresh()  # the button shows whether the generator runs, also when it failed to start

    def _refresh(self) -> None:
        pass  # the state changes as records are sent; rendering reads it

    def _render(self) -> None:
        s = self.state
        self._rendering = True
        try:
            update(self.run_button, description="Stop generator" if s.running else "Start generator",
                 icon="stop" if s.running else "play", value=s.running)  # fmt: skip
        finally:
            self._rendering = False
        update(self.progress, max=max(s.target or 1, 1), value=s.generated)
        rows = [(x.partition, x.offset, x.key, short(x.value, 40)) for x in reversed(s.sent)][:5]
        update(self.recent, value=table_html(["partition", "offset", "key", "value"], rows) if rows else "")
        if s.error:
            update(self.status, value=f"<span style='color:#b00020'>{escape(s.error)}</span>")

    def _close(self) -> None:
        self.state.close()

    def summary(self) -> str:
        return self.state.summary()

    def __repr__(self) -> str:
        return widget_repr(self, topic=self.state.topic)


# live tail --------------------------------------------------------------------------------
class LiveTail(StateWidget[TailState]):
    """The newest records of a topic, per partition, filtered on key and value."""

    def __init__(
        self,
        lab: Lab,
        topic: str,
        filter: str | None = None,
        *,
        per_partition: int = 5,
        value_width: int = 48,
        interval: float = 1.0,
        autostart: bool = True,
        show_transactions: bool = False,
    ) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = TailState(lab, topic, per_partition=per_partition, filter=filter,
                               show_transactions=show_transactions)  # fmt: skip
        self.value_width = value_width  # characters of each value shown (the summary shows more)
        self.filter = w.Text(value=filter or "", description="filter", placeholder="text in key or value",
                             continuous_update=False)  # fmt: skip
        self.filter.observe(lambda ch: self._guarded(lambda: self._filter(ch["new"] or None)), names="value")
        self.body = w.HTML()
        self.view = self._titled(f"Live tail of {topic}", self.filter, self.body)
        self._begin()

    def _filter(self, text: str | None) -> None:
        self._redraw_after(lambda: self.state.set_filter(text))

    def _render(self) -> None:
        blocks = []
        for p, records in self.state.newest().items():
            rows: list[tuple[Any, ...]] = [
                (r.offset, r.time.strftime("%Y-%m-%d %H:%M:%S"), _key_text(r.key), short(r.value, self.value_width),
                 self.state.error(r) or "")
                for r in reversed(records)
            ]  # fmt: skip
            headers = ["offset", "time (UTC)", "key", "value", "not decoded"]
            if not any(row[-1] for row in rows):  # the error column only when a record has one
                headers, rows = headers[:-1], [row[:-1] for row in rows]
            if self.state.show_transactions:  # newest first, as the records
                status = {r.offset: self.state.transaction(r) for r in records}
                marks = [(o, "", "", f"{kind} marker (producer id {pid}, epoch {epoch})", "marker")
                         for o, kind, pid, epoch in self.state.markers(p)]  # fmt: skip
                rows = sorted([(*row[:4], status[row[0]]) for row in rows] + marks, key=lambda row: -row[0])
                headers = [*headers[:4], "transaction"]
            end = self.state.ends.get(p, 0)
            blocks.append(f"<div style='margin:4px 0'><b>partition {p}</b> (end offset {end})"
                          + table_html(headers, rows) + "</div>")  # fmt: skip
        update(self.body, value="".join(blocks) or "<i>no partitions</i>")

    def _close(self) -> None:
        self.state.close()

    def __repr__(self) -> str:
        return widget_repr(self, topic=self.state.topic)


# topic browser ----------------------------------------------------------------------------
def _key_text(key: Any) -> Any:
    return key if key is None or isinstance(key, str) else short(key, 40)  # a decoded record key as JSON


ALL_PARTITIONS = -1  # the partition dropdown's "all" (a None value would show as no selection)


class TopicBrowser(StateWidget[TopicBrowserState]):
    """Topics, partitions, offsets, sizes and retention; a slice of records to pandas."""

    def __init__(self, lab: Lab, topic: str | None = None, *, interval: float = 2.0, autostart: bool = True) -> None:
        super().__init__(interval=interval, autostart=autostart)
        self.state = TopicBrowserState(lab, topic)
        self.topics = w.HTML()
        self.topic = w.Dropdown(description="topic", options=[])
        self.partition = w.Dropdown(description="partition", options=[("all", ALL_PARTITIONS)], value=ALL_PARTITIONS)
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
        self.show.on_click(lambda _: self._guarded(self._select))
        self.topic.observe(lambda _: None if self._rendering else self._select(new_topic=True), names="value")
        self.export.on_click(lambda _: self._guarded(self.to_dataframe))
        self.view = self._titled(
            "Topics", self.topics, w.HBox([self.topic, self.partition]), w.HBox([self.start_at, self.end_at]),
            w.HBox([self.show, self.export, self.exported]), self.partitions, self.preview,
        )  # fmt: skip
        self._begin()

    def _select(self, *, new_topic: bool = False) -> None:
        try:
            with self._lock:
                partition = None if new_topic or self.partition.value == ALL_PARTITIONS else self.partition.value
                self.state.select(self.topic.value, partition, bound(self.start_at.value), bound(self.end_at.value))
                self._render()
        except StreamlabError as exc:
            self._failed(exc)

    def select(
        self, topic: str | None = None, partition: int | None = None, start: Any = None, end: Any = None
    ) -> None:
        """Choose the slice from code (the same as the dropdowns and text boxes)."""
        self._redraw_after(lambda: self.state.select(topic, partition, start, end))

    def to_dataframe(self) -> pd.DataFrame:
        """The selected slice as a DataFrame (also kept in ``.dataframe``)."""
        self.dataframe = self.state.to_dataframe()
        update(self.exported, value=f"<code>.dataframe</code>: {len(self.dataframe):,} rows")
        return self.dataframe

    def _render(self) -> None:
        s = self.state
        rows = [(t.name, t.partitions, f"{t.records:,}", size_text(t.bytes), t.retention_ms, t.retention_bytes,
                 t.cleanup_policy) for t in s.topics]  # fmt: skip
        headers = ["topic", "partitions", "records", "bytes", "retention.ms", "retention.bytes", "cleanup.policy"]
        update(self.topics, value=table_html(headers, rows))
        names = tuple(t.name for t in s.topics)
        choices = (("all", ALL_PARTITIONS), *((str(p.partition), p.partition) for p in s.partitions))
        chosen = (s.topic, s.partition)
        self._rendering = True
        try:
            if chosen != self._shown:  # the selection changed in code: show it (else keep what the user picked)
                self._shown = chosen
                self.topic.options, self.partition.options = names, choices
                self.topic.value, self.partition.value = s.topic, ALL_PARTITIONS if s.partition is None else s.partition
            else:
                keep_options(self.topic, names)
                keep_options(self.partition, choices)
        finally:
            self._rendering = False
        prows = [(p.partition, p.log_start, p.end, p.records, "-" if p.bytes is None else f"{p.bytes:,}")
                 for p in s.partitions]  # fmt: skip
        update(self.partitions, value=table_html(["partition", "log start", "end", "records", "bytes"], prows))
        preview = s.preview.drop(columns=[c for c in ("headers",) if c in s.preview.columns])
        shown = preview.to_html(index=False, max_cols=10, na_rep="", border=0) if len(preview) else ""
        update(self.preview, value=f"<div style='overflow-x:auto;max-width:100%;font-size:12px'>{shown}</div>")

    def __repr__(self) -> str:
        return widget_repr(self, topic=self.state.topic)
