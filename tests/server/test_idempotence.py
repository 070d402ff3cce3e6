"""Producer sequence state across crashes, driven directly (no server process)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from streamlab.broker import Broker, produce, topics
from streamlab.broker.producer_state import ProducerStates
from streamlab.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from streamlab.model.schema import build_batch


def rows(n: int) -> pa.RecordBatch:
    return build_batch(base_offset=0, timestamps=[1] * n, keys=[None] * n, key_formats=[0] * n,
                       values=[b"v"] * n, value_formats=[1] * n)  # fmt: skip


def store(broker: Broker, states: ProducerStates, pid: int, first: int, n: int) -> int:
    """What the Produce handler does for one idempotent batch."""
    with states.partition("t", 0):
        duplicate = states.check("t", 0, pid, 0, first, first + n - 1)
        if duplicate is not None:
            return duplicate
        expected = broker.log("t", 0).high_watermark
        states.begin("t", 0, pid, 0, (first, first + n - 1), expected, n)
        base = produce.append(broker, "t", 0, rows(n), sync=True)
        states.commit("t", 0, pid, expected, stored_at=base, sync=True)
        return base


def test_sequence_rules(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    try:
        topics.create_topic(broker, "t")
        states = ProducerStates(broker)
        pid, _ = states.new_producer_id()
        assert store(broker, states, pid, 0, 3) == 0
        assert store(broker, states, pid, 0, 3) == 0  # a retry
        assert store(broker, states, pid, 3, 2) == 3
        with pytest.raises(OutOfOrderSequenceError):
            states.check("t", 0, pid, 0, 9, 9)
        with pytest.raises(OutOfOrderSequenceError):
            states.check("t", 0, pid, 1, 5, 5)  # a new epoch starts at 0
        assert states.check("t", 0, pid, 1, 0, 0) is None
        with pytest.raises(InvalidProducerEpochError):
            states.check("t", 0, pid, -1, 5, 5)
        assert states.check("t", 0, pid + 1, 0, 42, 42) is None  # unknown producers are accepted
        states.close()
    finally:
        broker.close()


def test_state_survives_reopen_and_a_crash_between_the_two_writes(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    topics.create_topic(broker, "t")
    states = ProducerStates(broker)
    pid, _ = states.new_producer_id()
    assert store(broker, states, pid, 0, 4) == 0
    # A crash after the state entry was written but before the data was: nothing stored.
    states.begin("t", 0, pid, 0, (4, 5), broker.log("t", 0).high_watermark, 2)
    states.close()
    broker.close()
    with open(tmp_path / "server" / "producer-state.log", "ab") as torn:
        torn.write(b'0badc0de {"pid":')  # and a torn line after it

    broker = Broker(tmp_path)
    try:
        states = ProducerStates(broker)
        assert states.check("t", 0, pid, 0, 0, 3) == 0  # the stored batch is still known
        assert states.check("t", 0, pid, 0, 4, 5) is None  # the lost one may be sent again
        assert store(broker, states, pid, 4, 2) == 4
        assert states.new_producer_id()[0] > pid  # ids are never reused
        states.forget_topic("t")
        assert states.check("t", 0, pid, 0, 0, 3) is None
        states.close()
    finally:
        broker.close()
