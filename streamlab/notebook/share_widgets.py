"""Live views of share groups (KIP-932), reached as ``streamlab.widgets.ShareGroupView`` and
``streamlab.widgets.QueueVsStream``.

>>> view = streamlab.widgets.QueueVsStream(lab, "jobs", share_group="job-queue", classic_group="workers")
>>> view            # the share group's records beside the classic group's offsets
>>> view.stop()

Both draw a :class:`~streamlab.notebook.share_state.ShareGroupState` and need the embedded
broker: on a ``kafka://`` Lab they raise
:class:`~streamlab.notebook.share_state.ShareViewUnavailableError`.
"""

from __future__ import annotations

import ipywidgets as w

from streamlab.front.lab import Lab
from streamlab.notebook.group_widgets import OffsetsLag
from streamlab.notebook.share_state import (
    NOT_YET_DELIVERED_COLOR,
    STATE_COLORS,
    InFlight,
    ShareGroupState,
    SharePartitionInfo,
)
from streamlab.notebook.widget_helpers import (
    CompositeWidget,
    LiveWidget,
    StateWidget,
    escape,
    half_box,
    table_html,
    update,
    widget_repr,
    wrap_row,
)

__all__ = ["QueueVsStream", "ShareGroupView"]

_BOX = "display:inline-block;width:10px;height:10px;vertical-align:middle"
_SMALL = "font-size:12px"
_NOTHING = f"<div style='color:#666;{_SMALL}'>nothing in flight</div>"


def _cell(r: InFlight) -> str:
    """One record: coloured by state, its offset small on top and its delivery count below."""
    tip = f"offset {r.offset}: {r.state}, delivered {r.delivery_count}x"
    if r.owner is not None:
        tip += f", held by {r.owner}"
    if r.lock_remaining is not None:
        tip += f", lock {r.lock_remaining.total_seconds():.1f} s left"
    return (
        f"<div class='streamlab-share-record' data-offset='{r.offset}' data-state='{escape(r.state)}' "
        f"data-delivery-count='{r.delivery_count}' title='{escape(tip)}' style='width:30px;height:30px;margin:1px;"
        f"background:{STATE_COLORS.get(r.state, '#333')};color:white;text-align:center;line-height:13px;"
        f"font-size:9px;padding-top:2px;box-sizing:border-box'>{r.offset}<br>"
        f"<b style='font-size:12px'>{r.delivery_count}</b></div>"
    )


def _partition(p: SharePartitionInfo, label: str) -> str:
    note = f"align-self:center;margin-left:4px;{_SMALL}"
    head = (f"<div style='margin-top:4px;{_SMALL}'><b>{escape(label)}</b>: start {p.start_offset:,}, "
            f"end {p.end_offset:,}, log {p.log_start:,}..{p.high_watermark:,}</div>")  # fmt: skip
    cells = "".join(_cell(r) for r in p.records)
    if p.hidden:
        cells += f"<div style='{note};color:#666'>+{p.hidden:,} more</div>"
    if p.not_yet_delivered:
        cells += (f"<div style='{note};padding:6px;background:{NOT_YET_DELIVERED_COLOR}'>"
                  f"{p.not_yet_delivered:,} not yet delivered</div>")  # fmt: skip
    return head + f"<div style='display:flex;flex-wrap:wrap;align-items:flex-start'>{cells or _NOTHING}</div>"


def _legend() -> str:
    items = [f"<span style='{_BOX};background:{c}'></span> {s}" for s, c in STATE_COLORS.items()]
    items.append(f"<span style='{_BOX};background:{NOT_YET_DELIVERED_COLOR}'></span> not yet delivered")
    items.append("cell: offset over <b>delivery count</b>")
    return f"<div style='font-size:11px;margin-top:4px'>{' &nbsp; '.join(items)}</div>"


class ShareGroupView(StateWidget[ShareGroupState]):
    """Each in-flight record of share group ``group`` as a cell coloured by its state with
    its delivery count, per partition; a legend; the members and how many records each holds.
    ``topic`` narrows it to one of the group's topics; ``max_records`` caps the cells per
    partition (the counts still cover every record)."""

    def __init__(
        self,
        lab: Lab,
        group: str,
        *,
        topic: str | None = None,
        max_records: int = 200,
        interval: float = 1.0,
        autostart: bool = True,
    ) -> None:
        state = ShareGroupState(lab, group, topic=topic, max_records=max_records)  # raises before any thread
        super().__init__(interval=interval, autostart=autostart)
        self.state = state
        self.header = w.HTML()
        self.body = w.HTML()
        self.members = w.HTML()
        title = f"Share group {group}" + (f" on {topic}" if topic else "")
        self.view = self._titled(title, self.header, self.body, w.HTML(_legend()), self.members)
        self._begin()

    def _render(self) -> None:
        s = self.state
        if not s.exists:
            update(self.header, value="<i>no share consumer has joined this group yet</i>")
            update(self.body, value="")
            update(self.members, value="")
            return
        counts = ", ".join(f"<b>{n:,}</b> {st}" for st, n in s.counts.items())
        dead_letters = escape(s.dead_letter_topic or "-")
        update(self.header, value=(f"<div>delivery limit <b>{s.delivery_count_limit}</b>, dead-letter topic "
                                   f"<b>{dead_letters}</b>; in flight: {counts}</div>"))  # fmt: skip
        several = len({p.topic for p in s.partitions}) > 1
        blocks = [_partition(p, p.name if several else f"partition {p.partition}") for p in s.partitions]
        update(self.body, value="".join(blocks) or "<i>no partitions</i>")
        rows = [(m.label, f"{m.held:,}") for m in s.members]
        update(self.members, value=table_html(["member", "holds"], rows) if rows else "<i>no members</i>")

    def __repr__(self) -> str:
        return widget_repr(self, group=self.state.group)


class QueueVsStream(CompositeWidget):
    """One topic read two ways, side by side: share group ``share_group`` (a queue: records
    handed out one by one) and classic group ``classic_group`` (a stream: one committed
    offset per partition, :class:`~streamlab.notebook.widgets.OffsetsLag`), refreshed together."""

    def __init__(
        self,
        lab: Lab,
        topic: str,
        *,
        share_group: str,
        classic_group: str,
        max_records: int = 200,
        interval: float = 1.0,
        autostart: bool = True,
    ) -> None:
        share = ShareGroupView(lab, share_group, topic=topic, max_records=max_records, autostart=False)
        super().__init__(interval=interval, autostart=autostart)
        self.share = share
        self.stream = OffsetsLag(lab, topic, classic_group, autostart=False)
        self.parts: tuple[LiveWidget, ...] = (self.share, self.stream)
        for part in self.parts:  # side by side where there is room, else one under the other
            part.view.layout = half_box()
        title = f"{topic} as a queue (share group {share_group}) and as a stream (classic group {classic_group})"
        self.view = self._titled(title, wrap_row([self.share.view, self.stream.view]))
        self._begin()

    def summary(self) -> str:
        return "\n".join(part.summary() for part in self.parts)

    def __repr__(self) -> str:
        s = self.share.state
        return widget_repr(self, topic=s.topic, share_group=s.group, classic_group=self.stream.state.group)
