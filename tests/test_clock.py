"""The broker's clock is injectable: timeouts are stepped through, not slept through."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import streamlab
from streamlab.errors import ConfigError


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = streamlab.ManualClock(start_ms=1_000)
    assert (clock.monotonic(), clock.time_ms()) == (0.0, 1_000)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.time_ms()) == (2.5, 3_500)
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(-1)


def test_a_silent_member_times_out_when_the_clock_says_so(tmp_path: Path) -> None:
    clock = streamlab.ManualClock()
    with streamlab.connect(tmp_path, clock=clock) as lab:
        lab.create_topic("t", partitions=2)
        quiet = lab.consumer("t", group="g", max_poll_interval_ms=600_000, session_timeout_ms=10_000)
        busy = lab.consumer("t", group="g", max_poll_interval_ms=600_000, session_timeout_ms=10_000)
        deadline = time.monotonic() + 10
        while len(quiet.assignment()) + len(busy.assignment()) < 2 or len(lab.describe_group("g")) < 2:
            quiet.poll(0.05)
            busy.poll(0.05)
            assert time.monotonic() < deadline
        time.sleep(0.5)  # real time passes; the broker's clock does not: nobody times out
        assert len(lab.describe_group("g")) == 2
        clock.advance(6)
        busy.poll(0.05)  # busy heartbeats at 6 s on the broker's clock; quiet does not
        clock.advance(6)  # 12 s since quiet was last heard from: past its 10 s session
        while len(busy.assignment()) < 2:  # the coordinator's tick notices, busy gets both
            busy.poll(0.05)
            assert time.monotonic() < deadline
        reasons = set(lab.rebalances("g")["reason"])
        assert any("timed out (session.timeout.ms)" in reason for reason in reasons), reasons
        busy.close()
        quiet.close()


def test_a_clock_is_for_embedded_labs_only() -> None:
    with pytest.raises(ConfigError, match="clock= is for embedded labs"):
        streamlab.connect("kafka://127.0.0.1:9", clock=streamlab.ManualClock())


def test_a_silent_consumer_protocol_member_times_out_when_the_clock_says_so(tmp_path: Path) -> None:
    """KIP-848 groups run on the broker's clock too: a member's session runs out when the
    clock says so, not when the wall clock does."""
    clock = streamlab.ManualClock()
    with streamlab.connect(tmp_path, clock=clock) as lab:
        lab.create_topic("t", partitions=2)
        quiet = lab.consumer("t", group="g", group_protocol="consumer")
        busy = lab.consumer("t", group="g", group_protocol="consumer")
        deadline = time.monotonic() + 10
        while len(quiet.assignment()) != 1 or len(busy.assignment()) != 1:
            quiet.poll(0.05)
            busy.poll(0.05)
            assert time.monotonic() < deadline
        quiet._die()  # type: ignore[attr-defined]  # it stops heartbeating, still in the group
        time.sleep(0.5)  # real time passes; the broker's clock does not: nobody times out
        busy.poll(0.05)
        assert lab.describe_group("g")["member"].nunique() == 2
        clock.advance(30)
        busy.poll(0.05)  # busy heartbeats at 30 s on the broker's clock; quiet does not
        clock.advance(30)  # 60 s since quiet was last heard from: past the 45 s session
        while len(busy.assignment()) < 2:  # busy's heartbeat expires quiet; busy gets both
            busy.poll(0.05)
            assert time.monotonic() < deadline
        assert set(lab.describe_group("g")["member"]) == {busy.member_id}
        busy.close()
