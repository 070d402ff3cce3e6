"""ParquetPartitionLog.delete_records: Kafka's DeleteRecords on the storage layer."""

from __future__ import annotations

from pathlib import Path

import pytest

import streamlab
from streamlab.broker import Broker
from streamlab.errors import OffsetOutOfRangeError


def offsets(broker: Broker) -> list[int]:
    return broker.log("t", 0).read(0, 1000).column("offset").to_pylist()


def test_log_start_moves_durably_and_segments_below_it_go(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path, auto_create_topics=True) as lab, lab.producer() as p:
        for i in range(10):
            p.send("t", value=i).result(timeout=10)
            if i == 4:
                p.flush()
                lab.roll("t")  # a sealed segment 0..4, the rest active
    broker = Broker(tmp_path)
    try:
        log = broker.log("t", 0)
        with pytest.raises(OffsetOutOfRangeError):
            log.delete_records(11)
        assert log.delete_records(7) == 7
        assert log.delete_records(3) == 7  # never backwards
        assert offsets(broker) == [7, 8, 9]
        assert [s.base_offset for s in log.sealed_segments()] == [5]  # 0..4 deleted, 5..9 sealed
        assert len(list(log.dir.glob("*.parquet"))) == 1
    finally:
        broker.close()
    broker = Broker(tmp_path)
    try:
        log = broker.log("t", 0)
        assert (log.log_start_offset, log.high_watermark) == (7, 10)
        assert offsets(broker) == [7, 8, 9]
        assert log.delete_records(10) == 10 and offsets(broker) == []
    finally:
        broker.close()
    broker = Broker(tmp_path)
    try:
        assert (broker.log("t", 0).log_start_offset, broker.log("t", 0).high_watermark) == (10, 10)
    finally:
        broker.close()
