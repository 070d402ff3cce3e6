"""The history sampler with an injected clock, and its samples in the catalog (embedded broker)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import streamlab
from streamlab.client.backend import EmbeddedBackend
from streamlab.front.history import History
from streamlab.port.history import KEEP_MS


def test_the_clock_dates_samples_and_old_samples_are_dropped(tmp_path: Path) -> None:
    now = [1_767_571_200.0]  # 2026-01-05T00:00Z
    backend = EmbeddedBackend(tmp_path)
    try:
        backend.create_topic("t", 1, {}, None)
        history = History(backend, clock=lambda: now[0])
        for step in range(3):
            with backend.producer() as p:
                for i in range(step * 5):
                    p.send("t", value=i)
            history.sample()
            now[0] += 10
        flow = history.throughput_history("t", None)
        assert flow["time"].tolist() == [pd.Timestamp("2026-01-05T00:00:00Z") + pd.Timedelta(seconds=10 * k)
                                         for k in range(3)]  # fmt: skip
        assert flow["end_offset"].tolist() == [0, 5, 15]
        assert flow["in_per_s"].tolist()[1:] == [0.5, 1.0]
        now[0] += KEEP_MS / 1000 - 15  # keeps what is newer than 00:00:15
        history.sample()
        assert len(history.throughput_history("t", None)) == 2  # the one at 00:00:20 and the new one
    finally:
        backend.close()


def test_samples_survive_reopening_the_directory(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        lab.sample_history(now="2026-01-05T00:00:00Z")
    with streamlab.connect(tmp_path) as lab:
        assert lab.throughput_history("t")["end_offset"].tolist() == [0]
