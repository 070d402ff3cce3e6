"""``lab.browse`` reads a page a window at a time, never the topic whole (embedded broker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from streamlab.client.backend import EmbeddedBackend
from streamlab.front.browse import FIRST_WINDOW, MAX_WINDOW
from streamlab.front.lab import Lab
from streamlab.model.views import Bounds


class CountingBackend(EmbeddedBackend):
    """The embedded backend, remembering the offset range of every read."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[tuple[int, int]] = []

    def replay_table(self, topic: str, bounds: Bounds, **kw: Any) -> pa.Table:
        assert bounds.start_offset is not None and bounds.end_offset is not None
        self.reads.append((bounds.start_offset, bounds.end_offset))
        return super().replay_table(topic, bounds, **kw)


def test_a_page_reads_only_the_windows_it_needs(tmp_path: Path) -> None:
    backend = CountingBackend(tmp_path)
    with Lab(backend) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            p.send_many("t", pd.DataFrame({"n": range(5000)}))
        lab.roll("t")
        assert lab.browse("t", limit=10, start=100)["n"].tolist() == list(range(100, 110))
        assert backend.reads == [(100, 110)]

        backend.reads.clear()
        assert lab.browse("t", where="n % 1000 = 999", limit=2)["n"].tolist() == [999, 1999]
        assert backend.reads[0] == (0, FIRST_WINDOW)  # then windows double while the filter drops rows
        assert backend.reads[-1][1] <= 3 * FIRST_WINDOW
        assert all(end - start <= MAX_WINDOW for start, end in backend.reads)

        backend.reads.clear()
        assert lab.browse("t", start=-3)["n"].tolist() == [4997, 4998, 4999]
        assert backend.reads == [(4997, 5000)]


def test_a_field_that_only_later_records_have(tmp_path: Path) -> None:
    with Lab(EmbeddedBackend(tmp_path)) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            p.send_many("t", pd.DataFrame({"n": range(2500)}))
            p.send_many("t", pd.DataFrame({"n": range(2500, 2510), "coupon": "SAVE"}))
        found = lab.browse("t", where="coupon = 'SAVE'", limit=3)
        assert found["n"].tolist() == [2500, 2501, 2502] and found["coupon"].tolist() == ["SAVE"] * 3
        assert lab.browse("t", where="coupon IS NULL AND n >= 2498")["n"].tolist() == [2498, 2499]
