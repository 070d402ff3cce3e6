"""``streamlab.plot``: matplotlib figures of a Lab, for reports and CI-checked notebooks.

Every function returns a :class:`matplotlib.figure.Figure` (made without pyplot, so a
notebook shows it once, where you put it) with a title, labelled axes and a legend.
``summary=True`` also prints a short text of what was drawn, the part of a plot that
nbval can compare; :func:`summary_of` returns that text for any figure made here.

>>> fig = streamlab.plot.records_per_partition(lab, "clicks", summary=True)
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import DateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from streamlab.front.lab import Lab
from streamlab.notebook.group_state import LagState, RebalanceTimelineState
from streamlab.notebook.job_state import TimeUnit, WindowSeriesState
from streamlab.notebook.share_state import NOT_YET_DELIVERED_COLOR, STATE_COLORS, ShareGroupState
from streamlab.notebook.state_helpers import PALETTE, colors_for

__all__ = [
    "lag_history",
    "offsets_and_lag",
    "rebalance_timeline",
    "records_per_partition",
    "share_states",
    "summary_of",
    "throughput",
    "throughput_history",
    "windows",
]

_summaries: WeakKeyDictionary[Figure, str] = WeakKeyDictionary()


def _show_in_jupyter() -> None:
    """Figures made without pyplot have no image formatter in IPython until an inline
    backend registers one: register PNG for :class:`Figure` when running in IPython."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    if Figure in formatter.type_printers:  # %matplotlib inline did it already
        return
    formatter.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


_show_in_jupyter()
_GREY, _DONE, _LAG = "#c8c8c8", "#4c9f70", "#f28e2b"


def summary_of(fig: Figure) -> str:
    """The text summary of a figure made by this module."""
    return _summaries.get(fig, "")


def _finish(fig: Figure, text: str, show: bool) -> Figure:
    _summaries[fig] = text
    if show:
        print(text)
    return fig


def _figure(rows: int = 1, cols: int = 1, **kw: Any) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=kw.pop("figsize", (9, 3.6 * rows)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, [ax for row in axes for ax in row]


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")


def offsets_and_lag(
    lab: Lab, topic: str, group: str, *, history: LagState | None = None, summary: bool = False
) -> Figure:
    """Per partition, bars from 0 to the end offset: removed by retention (before the log
    start), consumed (up to the group's committed offset) and lag. With ``history`` (a
    :class:`LagState` refreshed over time) a second panel draws lag over time."""
    state = LagState(lab, topic, group)
    state.refresh()
    samples = list(history.samples) if history is not None else []  # a ticker may be appending
    over_time = len(samples) >= 2
    fig, axes = _figure(2 if over_time else 1, 1, figsize=(9, 3.2 + 3 * over_time + 0.3 * len(state.rows)))
    ax = axes[0]
    parts = [r.partition for r in state.rows]
    starts = [r.log_start for r in state.rows]
    done = [r.log_start if r.committed is None else max(r.committed, r.log_start) for r in state.rows]
    ax.barh(parts, starts, color=_GREY, label="removed by retention")
    ax.barh(parts, [d - s for d, s in zip(done, starts, strict=True)], left=starts, color=_DONE,
            label="consumed (committed)")  # fmt: skip
    ax.barh(parts, [r.end - d for r, d in zip(state.rows, done, strict=True)], left=done, color=_LAG, label="lag")
    for r in state.rows:
        behind = "nothing committed" if r.time_lag is None else f"{r.time_lag} behind"
        ax.annotate(f" lag {r.lag:,} ({behind})", (r.end, r.partition), va="center", fontsize=8)
    ax.set_yticks(parts, [f"partition {p}" for p in parts])
    ax.invert_yaxis()
    ax.set_xlim(0, max([r.end for r in state.rows] + [1]) * 1.45)
    ax.set(title=f"Offsets and lag: group {group} on topic {topic}", xlabel="offset", ylabel="partition")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    if over_time:
        times = date2num([t for t, _ in samples])
        for i, p in enumerate(sorted({p for _, lags in samples for p in lags})):
            axes[1].plot(times, [lags.get(p, 0) for _, lags in samples], color=PALETTE[i % 10],
                     label=f"partition {p}")  # fmt: skip
        axes[1].xaxis_date()
        axes[1].xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
        axes[1].set(title="Lag over time", xlabel="time (UTC)", ylabel="lag (records)")
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return _finish(fig, state.summary(), summary)


def records_per_partition(lab: Lab, topic: str, *, top: int = 10, summary: bool = False) -> Figure:
    """Records in each partition next to the busiest keys: how evenly keys spread load."""
    offsets = lab.offsets(topic)
    columns = ["partition", "log_start_offset", "high_watermark"]
    counts = {int(p): int(end) - int(start) for p, start, end in offsets[columns].to_numpy()}
    fig, (left, right) = _figure(1, 2, figsize=(11, 3.8))
    parts = sorted(counts)
    total = sum(counts.values())
    mean = total / max(len(parts), 1)
    left.bar(parts, [counts[p] for p in parts], color=[PALETTE[p % 10] for p in parts], label="records")
    left.axhline(mean, color="#333", linestyle="--", linewidth=1, label=f"even share ({mean:,.0f})")
    left.set_xticks(parts, [str(p) for p in parts])
    left.set(title=f"Records per partition of {topic}", xlabel="partition", ylabel="records")
    left.legend(fontsize=8)
    lines = [f"{total:,} records in {len(parts)} partition(s) of {topic}"]
    lines += [f"  partition {p}: {counts[p]:,} ({100 * counts[p] / max(total, 1):.1f}%)" for p in parts]
    if total:
        lines.append(f"  busiest partition holds {max(counts.values()) / mean:.2f}x the even share")
    keyed = lab.replay(topic)[["partition", "key"]] if total else pd.DataFrame(columns=["partition", "key"])
    keyed = keyed[keyed["key"].notna()]
    if len(keyed):
        keyed = keyed.assign(key=keyed["key"].astype(str))
        by_key = keyed.groupby("key").agg(records=("partition", "size"), partition=("partition", "first"))
        busiest = by_key.sort_values(["records", "key"], ascending=[False, True], kind="stable").head(top)
        names = list(busiest.index)[::-1]
        right.barh(names, busiest["records"].tolist()[::-1],
                   color=[PALETTE[int(p) % 10] for p in busiest["partition"].tolist()[::-1]])  # fmt: skip
        shown = sorted({int(p) for p in busiest["partition"]})
        right.legend(handles=[Patch(color=PALETTE[p % 10], label=f"partition {p}") for p in shown], fontsize=8)
        named = [f"{k} (partition {int(p)}) {int(n):,}" for k, n, p in busiest.head(3).itertuples()]
        lines.append(f"  {len(by_key):,} distinct keys; busiest: " + ", ".join(named))
    else:
        _empty(right, "no keyed records")
        right.legend(handles=[Patch(color=_GREY, label="no keys")], fontsize=8)
        lines.append("  no keyed records")
    right.set(title=f"Busiest {top} keys (key skew)", xlabel="records", ylabel="key")
    right.tick_params(axis="y", labelsize=7)
    return _finish(fig, "\n".join(lines), summary)


def rebalance_timeline(lab: Lab, group: str, *, summary: bool = False) -> Figure:
    """A Gantt chart of partition ownership: one row per partition, one column per
    generation, coloured by the member that owned it; crosses mark revocations."""
    state = RebalanceTimelineState(lab, group)
    state.refresh()
    gens = state.generations
    tps = sorted({tp for g in gens for tp in g.owners} | {tp for g in gens for _, tp in g.revoked})
    fig, (ax,) = _figure(1, 1, figsize=(9, 1.6 + 0.4 * max(len(tps), 2)))
    ax.set(title=f"Partition ownership by generation: group {group}", xlabel="generation", ylabel="partition")
    if state.history_error or not gens:
        _empty(ax, state.history_error or "no generations yet")
        ax.legend(handles=[Patch(color=_GREY, label="no history")], fontsize=8)
        return _finish(fig, state.summary(), summary)
    colors = colors_for([m for g in gens for m in g.owners.values()])
    rows = {tp: i for i, tp in enumerate(tps)}
    for x, g in enumerate(gens):
        for tp, owner in g.owners.items():
            ax.barh(rows[tp], 0.92, left=x + 0.04, color=colors[owner], height=0.7)
        for _, tp in g.revoked:
            ax.plot(x + 0.04, rows[tp], marker="x", color="#b00020", markersize=7, linestyle="none")
    single = len({tp.topic for tp in tps}) == 1
    ax.set_yticks(list(rows.values()), [f"partition {tp.partition}" if single else str(tp) for tp in tps])
    ax.invert_yaxis()
    ax.set_xticks([x + 0.5 for x in range(len(gens))], [str(g.generation) for g in gens])
    ax.set_xlim(0, len(gens))
    handles = [Patch(color=c, label=m) for m, c in colors.items()]
    handles.append(ax.plot([], [], marker="x", color="#b00020", linestyle="none", label="revoked")[0])  # type: ignore[arg-type]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _finish(fig, state.summary(), summary)


def throughput(lab: Lab, topic: str, freq: str = "1h", *, summary: bool = False) -> Figure:
    """Records per ``freq`` (a pandas frequency: "1min", "1h", "1D"), per partition and in
    total, by record timestamp."""
    df = lab.replay(topic)[["partition", "timestamp"]]
    fig, (ax,) = _figure(1, 1)
    ax.set(title=f"Throughput of {topic} (records per {freq})", xlabel="time (UTC)", ylabel=f"records per {freq}")
    if not len(df):
        _empty(ax, "no records")
        ax.legend(handles=[Patch(color=_GREY, label="no records")], fontsize=8)
        return _finish(fig, f"no records in {topic}", summary)
    counts = df.groupby([pd.Grouper(key="timestamp", freq=freq), "partition"]).size().unstack(fill_value=0)
    times = pd.DatetimeIndex(counts.index).tz_convert(None)  # matplotlib draws naive datetimes as they are: UTC here
    for p in counts.columns:
        ax.plot(times, counts[p], color=PALETTE[int(p) % 10], linewidth=1, label=f"partition {p}")
    total = counts.sum(axis=1)
    ax.plot(times, total, color="#333", linewidth=1.8, label="all partitions")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    peak = total.idxmax()
    text = (f"{len(df):,} records of {topic} from {df['timestamp'].min():%Y-%m-%d %H:%M} to "
            f"{df['timestamp'].max():%Y-%m-%d %H:%M} UTC in {len(total)} buckets of {freq}; "
            f"peak {int(total.max()):,} at {peak:%Y-%m-%d %H:%M}, mean {total.mean():,.1f} per {freq}")  # fmt: skip
    return _finish(fig, text, summary)


def share_states(
    lab: Lab, group: str, *, topic: str | None = None, max_records: int = 200, summary: bool = False
) -> Figure:
    """A share group's in-flight records: one row per partition, x the offset, each record
    coloured by its state with its delivery count written in, then the records not yet
    delivered; below, delivery counts against the group's delivery count limit. Needs the
    embedded broker (:class:`~streamlab.notebook.share_state.ShareViewUnavailableError`)."""
    state = ShareGroupState(lab, group, topic=topic, max_records=max_records)
    state.refresh()
    parts = state.partitions
    fig, (top, bottom) = _figure(2, 1, figsize=(9, 4.6 + 0.4 * max(len(parts), 1)), height_ratios=[1.2, 1])
    top.set(title=f"In-flight records of share group {group}", xlabel="offset", ylabel="partition")
    bottom.set(title="Deliveries per in-flight record", xlabel="offset", ylabel="delivery count")
    handles = [Patch(color=c, label=s) for s, c in STATE_COLORS.items()]
    handles.append(Patch(color=NOT_YET_DELIVERED_COLOR, label="not yet delivered"))
    top.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    if not parts:
        _empty(top, "no share consumer has joined it yet" if not state.exists else "no partitions")
        _empty(bottom, "no deliveries")
        bottom.legend(handles=[Patch(color=_GREY, label="no records")], fontsize=8)
        return _finish(fig, state.summary(), summary)
    # Each record is a cell centred on its offset; past the cap, the axis ends at the last cell drawn.
    lo = min(p.start_offset for p in parts)
    hi = max(p.records[-1].offset + 1 if p.hidden else p.end_offset for p in parts)
    pad = max(2.0, 0.15 * (hi - lo))
    several = len({p.topic for p in parts}) > 1
    side = {id(p): k for k, p in enumerate(p for p in parts if p.records)}  # bars of partitions sharing an offset
    width = 0.8 / max(len(side), 1)
    for i, p in enumerate(parts):
        for s, color in STATE_COLORS.items():
            mine = [r for r in p.records if r.state == s]
            top.barh([i] * len(mine), 1, left=[r.offset - 0.5 for r in mine], color=color, height=0.7,
                     edgecolor="white", linewidth=1 if hi - lo <= 60 else 0)  # fmt: skip
            bottom.bar([r.offset + (side[id(p)] - (len(side) - 1) / 2) * width for r in mine],
                       [r.delivery_count for r in mine], width=width, color=color)  # fmt: skip
        if len(p.records) <= 60:  # numbers in wider windows would overlap
            for r in p.records:
                top.text(r.offset, i, str(r.delivery_count), ha="center", va="center", color="white",
                         fontsize=9 if hi - lo <= 30 else 6)  # fmt: skip
        if p.not_yet_delivered:
            top.barh(i, p.not_yet_delivered, left=p.end_offset - 0.5, color=NOT_YET_DELIVERED_COLOR, height=0.7)
    labels = []
    for p in parts:  # what the cells cannot show goes under the row's name, clear of the cells
        notes = [f"+{p.hidden:,} more"] if p.hidden else []
        notes += [f"{p.not_yet_delivered:,} not yet delivered"] if p.not_yet_delivered else []
        labels.append((p.name if several else f"partition {p.partition}") + "".join(f"\n{n}" for n in notes))
    top.set_yticks(range(len(parts)), labels)
    top.invert_yaxis()
    for ax in (top, bottom):
        ax.set_xlim(lo - 0.6, hi - 0.5 + pad)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    limit = state.delivery_count_limit or 1
    bottom.axhline(limit, color="#b00020", linestyle="--", linewidth=1, label=f"delivery count limit ({limit})")
    bottom.set_ylim(0, limit + 0.8)
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _finish(fig, state.summary(), summary)


def _times(df: pd.DataFrame) -> Any:
    return pd.DatetimeIndex(df["time"]).tz_convert(None)  # matplotlib draws naive datetimes as they are: UTC here


def lag_history(history: pd.DataFrame, *, summary: bool = False) -> Figure:
    """Lag over time from ``lab.lag_history(group)``: records behind per partition (top)
    and time behind (bottom)."""
    fig, (top, bottom) = _figure(2, 1, figsize=(9, 6.4))
    top.set(title="Lag over time", xlabel="time (UTC)", ylabel="lag (records)")
    bottom.set(title="Time lag over time", xlabel="time (UTC)", ylabel="time lag (seconds)")
    if history.empty:
        for ax in (top, bottom):
            _empty(ax, "no samples")
            ax.legend(handles=[Patch(color=_GREY, label="no samples")], fontsize=8)
        return _finish(fig, "no lag samples", summary)
    single = history["topic"].nunique() == 1
    for i, ((topic, p), rows) in enumerate(history.groupby(["topic", "partition"], sort=True)):
        label = f"partition {p}" if single else f"{topic}[{p}]"
        times = _times(rows)
        top.plot(times, rows["lag"], color=PALETTE[i % 10], linewidth=1.2, label=label, drawstyle="steps-post")
        bottom.plot(times, rows["time_lag"].dt.total_seconds(), color=PALETTE[i % 10], linewidth=1.2, label=label)
    for ax in (top, bottom):
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
    last = history[history["time"] == history["time"].max()]
    text = (f"{history['time'].nunique()} samples from {history['time'].min():%Y-%m-%d %H:%M:%S} to "
            f"{history['time'].max():%H:%M:%S} UTC; lag now {int(last['lag'].sum()):,} records "
            f"(max {int(history.groupby('time')['lag'].sum().max()):,}), time lag now "
            f"{last['time_lag'].max().total_seconds():.1f} s")  # fmt: skip
    return _finish(fig, text, summary)


def throughput_history(history: pd.DataFrame, *, summary: bool = False) -> Figure:
    """Records/s over time from ``lab.throughput_history(topic)``: in per partition and in
    total, and out in total when the frame has a group's ``out_per_s``."""
    fig, (ax,) = _figure(1, 1)
    ax.set(title="Throughput over time", xlabel="time (UTC)", ylabel="records/s")
    rated = history.dropna(subset=["in_per_s"]) if "in_per_s" in history.columns else history.iloc[0:0]
    if rated.empty:
        _empty(ax, "fewer than two samples")
        ax.legend(handles=[Patch(color=_GREY, label="no rates yet")], fontsize=8)
        return _finish(fig, "fewer than two samples: no rates yet", summary)
    for p in sorted(rated["partition"].unique()):
        rows = rated[rated["partition"] == p]
        ax.plot(_times(rows), rows["in_per_s"], color=PALETTE[int(p) % 10], linewidth=1, label=f"in, partition {p}")
    total_in = rated.groupby("time")["in_per_s"].sum()
    ax.plot(_times(total_in.reset_index()), total_in, color="#333", linewidth=1.8, label="in, all partitions")
    text = f"{len(total_in)} intervals; in: mean {total_in.mean():,.1f}, peak {total_in.max():,.1f} records/s"
    if "out_per_s" in rated.columns and rated["out_per_s"].notna().any():
        total_out = rated.groupby("time")["out_per_s"].sum()
        ax.plot(_times(total_out.reset_index()), total_out, color=_LAG, linewidth=1.8, linestyle="--",
                label="out (committed), all partitions")  # fmt: skip
        text += f"; out: mean {total_out.mean():,.1f}, peak {total_out.max():,.1f} records/s"
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return _finish(fig, text, summary)


def windows(
    lab: Lab, topic: str, *, x: str = "start", y: str = "value.value", by: str = "key",
    time_unit: TimeUnit | None = "ms", max_lines: int = 10, summary: bool = False,
) -> Figure:  # fmt: skip
    """A windowed aggregation's output topic (what ``streamlab.widgets.LivePlot`` draws live):
    the latest ``y`` of each window start ``x``, a line per ``by`` (the ``max_lines`` with the
    largest totals), the newest window of each line dashed (still filling while it runs)."""
    state = WindowSeriesState(lab, topic, x=x, y=y, by=by, time_unit=time_unit)
    try:
        state.refresh()
        data = state.to_dataframe()
    finally:
        state.close()
    fig, (ax,) = _figure(1, 1)
    ax.set(title=f"{y} per {x} by {by} ({topic})", xlabel=f"{x} (UTC)" if time_unit else x, ylabel=y)
    if data.empty:
        _empty(ax, state.table.waiting or "no windows")
        ax.legend(handles=[Patch(color=_GREY, label="no windows")], fontsize=8)
        return _finish(fig, state.summary(), summary)
    totals = data.groupby(by)[y].sum().sort_values(ascending=False, kind="stable")
    for i, name in enumerate(sorted(totals.index[:max_lines], key=str)):
        rows = data[data[by] == name]
        xs = pd.DatetimeIndex(rows[x]).tz_convert(None).to_numpy() if time_unit else rows[x].to_numpy()
        color = PALETTE[i % len(PALETTE)]
        ax.plot(xs[:-1], rows[y].iloc[:-1], color=color, marker="o", markersize=3, linewidth=1.2, label=str(name))
        ax.plot(xs[-2:], rows[y].iloc[-2:], color=color, linestyle="--", linewidth=1.2)
        ax.plot(xs[-1:], rows[y].iloc[-1:], color=color, marker="o", markersize=6, markerfacecolor="white")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="dashed: newest window")
    if time_unit:
        fig.autofmt_xdate()
    return _finish(fig, state.summary(), summary)
