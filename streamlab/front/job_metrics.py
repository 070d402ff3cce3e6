"""What a streaming job is doing, as plain data: :class:`JobMetrics` (``job.metrics()``),
and what it is made from: the job's output lines read for late records and errors
(:class:`OutputScan`), its records in and out sampled over time (:class:`RateSampler`),
and the size of its state directory.

Apart from :mod:`.jobs` (the process and its bounds) because this is about reading a job,
not running one; the notebook's ``JobView`` draws these numbers and tests assert them.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

EndedBy = Literal["itself", "stop", "kill", "timeout", "max_records", "lab closed"]

RATE_WINDOW_S = 5.0  # records/s are averaged over the samples of the last few seconds
_KEPT_ERRORS = 20

# Quix Streams 3.28 (quixstreams/dataframe/windows/time_based.py) logs this warning once per
# window a record arrived too late for, naming the record's partition and offset; a record
# of a hopping window can be late for several windows, so records are counted by offset.
LATE_RECORD = re.compile(
    r"Skipping window processing for the closed window .*partition=(?P<partition>\S+) offset=(?P<offset>-?\d+)"
)
# Python's tracebacks and exceptions, and Quix's (logging's) ERROR and CRITICAL lines
ERROR_LINE = re.compile(r"\[(ERROR|CRITICAL)\]|^Traceback \(most recent call last\)|^[\w.]*(Error|Exception)\b")


class OutputScan:
    """Reads a job's output lines as they arrive: the late records Quix skipped and the
    lines that report errors (thread-safe: a reader thread per pipe feeds it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._late: set[tuple[str, int]] = set()
        self._errors: deque[str] = deque(maxlen=_KEPT_ERRORS)

    def feed(self, line: str) -> None:
        late = LATE_RECORD.search(line)
        error = ERROR_LINE.search(line)
        if late or error:
            with self._lock:
                if late:
                    self._late.add((late["partition"], int(late["offset"])))
                if error:
                    self._errors.append(line)

    @property
    def late_records(self) -> int:
        with self._lock:
            return len(self._late)

    @property
    def errors(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._errors)


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.monotonic()
    consumed: int | None
    emitted: int | None


class RateSampler:
    """Records in (committed by the group) and out (appended to the outputs) at moments
    of the job's life, and the rates between the newest and those of the last
    :data:`RATE_WINDOW_S` seconds."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._samples: deque[Sample] = deque(maxlen=200)

    def add(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)

    @property
    def newest(self) -> Sample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def rates(self) -> tuple[float | None, float | None]:
        """(in, out) records per second; None until two samples are a moment apart."""
        with self._lock:
            if len(self._samples) < 2:
                return None, None
            new = self._samples[-1]
            old = next(s for s in self._samples if s.at >= new.at - self.window_s)
            if old is new:
                old = self._samples[-2]

        def rate(a: int | None, b: int | None) -> float | None:
            return None if a is None or b is None or new.at <= old.at else (b - a) / (new.at - old.at)

        return rate(old.consumed, new.consumed), rate(old.emitted, new.emitted)


def directory_bytes(path: str | Path | None) -> int | None:
    """Bytes of the files under ``path`` (0 while it does not exist yet; None without one).
    Files a store removes while this walks are skipped, not an error."""
    if path is None:
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


@dataclass(frozen=True, eq=False)
class JobRun:
    """How a job's run stands at one moment, what :class:`~streamlab.front.jobs.JobStatus`
    and :class:`JobMetrics` both begin with: running or exited (its return code, and what
    ended it: itself, ``stop()``, ``kill()`` or a bound), for how long, the records its group
    committed since it started (None without ``group=``), its last stderr lines."""

    name: str
    state: Literal["running", "exited"]
    returncode: int | None
    ended_by: EndedBy | None
    runtime_s: float
    consumed: int | None
    stderr: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class JobMetrics(JobRun):
    """A job's numbers at one moment (``job.metrics()``; ``streamlab.widgets.JobView`` draws them).

    - ``consumed``: records its group committed since the job started (None without ``group=``);
      ``in_per_s`` how fast that grew over the last few seconds (None once exited).
    - ``emitted``: records appended to its ``outputs`` topics since it started (for a windowed
      aggregation, the windows it emitted); ``out_per_s`` how fast (None once exited).
    - ``lag``: its group's lag per partition (``lab.lag``; None without ``group=``).
    - ``state_bytes``: bytes on disk under its ``state_dir`` (None without one).
    - ``late_records``: records Quix Streams skipped as too late for a closed window (counted
      from its "Skipping window processing for the closed window" warnings, so the job must
      log warnings, Quix's default, and its ``on_late`` callbacks must not silence them).
    - ``errors``: its output lines that report errors (tracebacks, ERROR/CRITICAL log lines);
      ``failed`` is True once it exited by itself with a nonzero code.
    """

    group: str | None
    outputs: tuple[str, ...]
    emitted: int | None
    in_per_s: float | None
    out_per_s: float | None
    lag: pd.DataFrame | None
    state_dir: str | None
    state_bytes: int | None
    late_records: int
    errors: tuple[str, ...]

    @property
    def failed(self) -> bool:
        return self.state == "exited" and self.ended_by == "itself" and self.returncode not in (0, None)

    @property
    def total_lag(self) -> int | None:
        return None if self.lag is None else int(self.lag["lag"].sum())

    def summary(self) -> str:
        """The numbers as text, stable once the job has exited (no rates then)."""
        if self.state == "running":
            head = f"job {self.name}: running for {self.runtime_s:.0f} s"
        else:
            head = f"job {self.name}: exited with {self.returncode} (ended by {self.ended_by})"
        lines = [head]
        if self.consumed is not None:
            rate = "" if self.in_per_s is None else f" ({self.in_per_s:,.1f}/s)"
            lines.append(f"  in: {self.consumed:,} records committed by group {self.group}{rate}")
        if self.emitted is not None:
            rate = "" if self.out_per_s is None else f" ({self.out_per_s:,.1f}/s)"
            lines.append(f"  out: {self.emitted:,} records written to {', '.join(self.outputs)}{rate}")
        if self.lag is not None:
            per = ", ".join(f"{t}[{p}] {int(n):,}" for t, p, n in zip(self.lag["topic"], self.lag["partition"],
                                                                        self.lag["lag"], strict=True))  # fmt: skip
            lines.append(f"  lag: {self.total_lag:,} records" + (f" ({per})" if per else ""))
        if self.state_bytes is not None:
            lines.append(f"  state store: {self.state_bytes:,} bytes in {self.state_dir}")
        lines.append(f"  late records dropped: {self.late_records:,}")
        if self.failed:
            lines.append(f"  FAILED: exit code {self.returncode}")
        lines.append(f"  errors: {len(self.errors)}" + "".join(f"\n    {line}" for line in self.errors[-5:]))
        if self.failed and not self.errors:
            lines += [f"    {line}" for line in self.stderr[-5:]]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
