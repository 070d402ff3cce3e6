"""Share groups (KIP-932): parallel work on one partition, locks, redelivery, dead letters,
restarts, and the state machine of one share-partition under any interleaving."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import streamlab
from streamlab import Record, TopicPartition
from streamlab.broker.share_registry import check_not_share, share_partitions
from streamlab.client.share_consumer import ShareConsumer
from streamlab.errors import ConfigError, GroupTypeError, InvalidRecordStateError, ShareGroupError, ShareOperationError
from streamlab.groups import share
from streamlab.groups.share import DELIVERY_LIMIT, REJECTED, RecordState, SharePartition
from streamlab.model.share import ShareGroupConfig
from streamlab.storage.catalog import Catalog
from streamlab.storage.share_store import ShareStore


def _produce(lab: streamlab.Lab, topic: str, n: int, **extra: Any) -> None:
    with lab.producer() as p:
        for i in range(n):
            p.send(topic, value={"i": i}, **extra)


def _drain(sc: ShareConsumer, until: Callable[[], bool], *, decide: Callable[[Record], str] = lambda r: "accept",
           seen: list[tuple[Record, int]] | None = None, timeout: float = 15) -> None:  # fmt: skip
    """Poll, acknowledge each record as ``decide`` says, commit; until ``until()``. ``seen``
    gets every delivery with its delivery count."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "share group did not finish in time"
        for rec in sc.poll(timeout=0.05, max_records=10):
            if seen is not None:
                seen.append((rec, sc.delivery_count(rec) or 0))
            sc.acknowledge(rec, decide(rec))  # type: ignore[arg-type]
        sc.commit()


def _empty(lab: streamlab.Lab, group: str) -> Callable[[], bool]:
    """True once every record of the group's partitions is done: SPSO reached the log end."""

    def done() -> bool:
        rows = share_partitions(lab.backend.broker, group)
        return bool(rows) and all(r["start_offset"] == r["high_watermark"] for r in rows)

    return done


def test_workers_in_threads_drain_one_partition_each_record_accepted_once(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=1)
    total = 400
    _produce(lab, topic, total)
    workers = [
        lab.share_consumer(topic, group="workers", auto_offset_reset="earliest", client_id=f"w{i}") for i in range(6)
    ]
    done: dict[str, list[int]] = {w.member_id: [] for w in workers}
    lock = threading.Lock()
    finished = threading.Event()

    def work(sc: ShareConsumer) -> None:
        deadline = time.monotonic() + 20
        while not finished.is_set() and time.monotonic() < deadline:
            records = sc.poll(timeout=0.05, max_records=7)
            time.sleep(0.002 * len(records))  # "processing" lets other workers in
            sc.acknowledge(records, "accept")
            sc.commit()
            with lock:
                done[sc.member_id].extend(r.offset for r in records)
                if sum(map(len, done.values())) >= total:
                    finished.set()

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    every = Counter(o for offsets in done.values() for o in offsets)
    assert sorted(every) == list(range(total)) and set(every.values()) == {1}  # each once, none missing
    assert sum(1 for offsets in done.values() if offsets) >= 2  # many members worked one partition
    assert lab.share_state("workers").empty
    (row,) = share_partitions(lab.backend.broker, "workers")
    assert row["start_offset"] == row["end_offset"] == row["high_watermark"] == total
    for w in workers:
        w.close()
    # The log is unchanged: a classic consumer group and a replay still see every record.
    assert len(lab.replay(topic)) == total
    with lab.consumer(topic, group="analytics", auto_offset_reset="earliest") as c:
        got: list[Any] = []
        deadline = time.monotonic() + 10
        while len(got) < total and time.monotonic() < deadline:
            got.extend(c.poll(timeout=0.1, max_records=500))
    assert sorted(r.value["i"] for r in got) == list(range(total))


def test_records_of_a_killed_worker_are_redelivered_after_the_lock_expires(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    _produce(lab, topic, 20, key=None)
    config: dict[str, Any] = {"group": "jobs", "auto_offset_reset": "earliest"}
    doomed = lab.share_consumer(topic, lock_ms=300, client_id="doomed", **config)
    survivor = lab.share_consumer(topic, client_id="survivor", **config)
    polled_at = time.monotonic()
    taken = doomed.poll(timeout=1, max_records=5)
    assert len(taken) == 5
    state = lab.share_state("jobs")
    held = state[state["owner"] == doomed.member_id]
    assert len(held) == 5 and set(held["state"]) == {"acquired"}
    assert held["lock_expires"].dt.tz is not None
    doomed._die()  # holds its records, never acknowledges or releases them
    seen: list[tuple[Record, int]] = []
    _drain(survivor, _empty(lab, "jobs"), seen=seen)
    redelivered = {(r.partition, r.offset) for r, count in seen if count == 2}
    assert redelivered == {(r.partition, r.offset) for r in taken}
    assert time.monotonic() - polled_at >= 0.29  # not before the lock ran out
    assert set(Counter((r.partition, r.offset) for r, _ in seen).values()) == {1}
    assert len(seen) == 20
    survivor.close()


def test_poison_records_reach_the_dead_letter_topic(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    _produce(lab, topic, 10, headers={"trace": "t-1"}, key="k")
    sc = lab.share_consumer(topic, group="poison", auto_offset_reset="earliest", delivery_count_limit=3,
                            dead_letter_topic=f"{topic}.dlq")  # fmt: skip

    def decide(rec: Record) -> str:
        return {3: "release", 7: "reject"}.get(rec.value["i"], "accept")  # 3 always fails, 7 can never work

    seen: list[tuple[Record, int]] = []
    _drain(sc, _empty(lab, "poison"), decide=decide, seen=seen)
    deliveries = Counter(r.value["i"] for r, _ in seen)
    assert max(count for r, count in seen if r.value["i"] == 3) == 3
    assert deliveries[3] == 3 and deliveries[7] == 1 and set(deliveries.values()) <= {1, 3}
    dlq = lab.replay(f"{topic}.dlq", headers=True)
    assert sorted(dlq["i"]) == [3, 7]
    by_value = {row.i: row for row in dlq.itertuples()}
    released, rejected = by_value[3].headers, by_value[7].headers
    assert released["streamlab.dlq.reason"] == DELIVERY_LIMIT.encode()
    assert released["streamlab.dlq.delivery.count"] == b"3"
    assert released["streamlab.dlq.source.topic"] == topic.encode()
    assert released["streamlab.dlq.source.partition"] == b"0"
    assert released["streamlab.dlq.source.offset"] == b"3"
    assert released["streamlab.dlq.group"] == b"poison"
    assert released["trace"] == b"t-1" and by_value[3].key == "k"  # the original record, as it was
    assert rejected["streamlab.dlq.reason"] == REJECTED.encode()
    assert rejected["streamlab.dlq.delivery.count"] == b"1"
    assert len(lab.replay(topic)) == 10  # archived in the share group, still in the log
    sc.close()


def test_restart_in_the_middle_loses_nothing_and_keeps_delivery_counts(tmp_path: Path) -> None:
    config: dict[str, Any] = {"group": "g", "auto_offset_reset": "earliest", "delivery_count_limit": 2,
                              "dead_letter_topic": "jobs.dlq", "acknowledgement_mode": "explicit"}  # fmt: skip
    accepted: list[int] = []
    with streamlab.connect(tmp_path / "lab") as lab:
        lab.create_topic("jobs", partitions=1)
        _produce(lab, "jobs", 30)
        first = lab.share_consumer("jobs", **config)
        records = first.poll(timeout=1, max_records=5)
        assert [r.offset for r in records] == list(range(5))
        first.acknowledge(records[:4], "accept")
        first.acknowledge(records[4], "release")  # back to available, delivery count 1
        first.commit()
        accepted += [r.offset for r in records[:4]]
        again = first.poll(timeout=1, max_records=1)  # offset 4 again, second delivery: at the limit
        assert [(r.offset, first.delivery_count(r)) for r in again] == [(4, 2)]
        first._die()  # the broker stops with offset 4 acquired
    with streamlab.connect(tmp_path / "lab") as lab:
        state = lab.share_state("g")
        assert state.empty  # 4 was archived at the restart: it had used its deliveries
        dlq = lab.replay("jobs.dlq", headers=True)
        assert list(dlq["i"]) == [4]
        assert dlq["headers"][0]["streamlab.dlq.reason"] == DELIVERY_LIMIT.encode()
        second = lab.share_consumer("jobs", **config)
        records = second.poll(timeout=1, max_records=5)
        assert [r.offset for r in records] == [5, 6, 7, 8, 9]
        second.acknowledge(records[:2], "accept")
        second.commit()
        accepted += [5, 6]
        second._die()  # 7, 8, 9 in flight at the restart, first delivery
    with streamlab.connect(tmp_path / "lab") as lab:
        state = lab.share_state("g")
        assert list(state["offset"]) == [7, 8, 9]
        assert set(state["state"]) == {"available"} and set(state["delivery_count"]) == {1}
        assert state["owner"].isna().all() and state["lock_expires"].isna().all()
        third = lab.share_consumer("jobs", **config)
        seen: list[tuple[Record, int]] = []
        _drain(third, _empty(lab, "g"), seen=seen)
        assert {r.offset: count for r, count in seen if count > 1} == {7: 2, 8: 2, 9: 2}
        accepted += [r.offset for r, _ in seen]
        assert sorted(accepted) == sorted(set(range(30)) - {4})  # each once; 4 went to the DLQ
        third.close()


def test_share_and_classic_groups_cannot_share_a_name(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    _produce(lab, topic, 3)
    with lab.consumer(topic, group="stream", auto_offset_reset="earliest") as c:
        with pytest.raises(GroupTypeError, match=r"classic consumer group .*1 active members"):
            lab.share_consumer(topic, group="stream")
        c.poll(timeout=1)
        c.commit()
    with pytest.raises(GroupTypeError, match="committed offsets"):
        lab.share_consumer(topic, group="stream")
    with lab.share_consumer(topic, group="queue"):
        pass
    with pytest.raises(GroupTypeError, match="is a share group"):
        check_not_share(lab.backend.broker, "queue")  # what a classic consumer checks before joining
    check_not_share(lab.backend.broker, "stream")


def test_a_share_consumer_cannot_seek(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    with lab.share_consumer(topic, group="q") as sc:
        tp = TopicPartition(topic, 0)
        for call in (lambda: sc.seek(tp, 0), sc.seek_to_beginning, sc.seek_to_end,
                     lambda: sc.seek_to_timestamp(0), lambda: sc.position(tp), lambda: sc.assign([tp])):  # fmt: skip
            with pytest.raises(ShareOperationError, match=r"cannot .*lab\.replay"):
                call()
        with pytest.raises(TypeError):
            iter(sc)


def test_share_state_shows_every_in_flight_record(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=1)
    _produce(lab, topic, 10)
    sc = lab.share_consumer(topic, group="q", auto_offset_reset="earliest", acknowledgement_mode="explicit")
    before = datetime.now(UTC)
    records = sc.poll(timeout=1, max_records=5)
    state = lab.share_state("q")
    assert list(state.columns) == ["topic", "partition", "offset", "state", "delivery_count", "owner", "lock_expires"]
    assert list(state["offset"]) == [0, 1, 2, 3, 4] and set(state["state"]) == {"acquired"}
    assert set(state["owner"]) == {sc.member_id} and set(state["delivery_count"]) == {1}
    expires = state["lock_expires"]
    assert str(expires.dt.tz) == "UTC"
    assert (expires > before + timedelta(seconds=29)).all() and (expires < before + timedelta(seconds=32)).all()
    sc.acknowledge([records[1], records[3]], "accept")
    sc.acknowledge(records[2], "release")
    sc.commit()
    state = lab.share_state("q").set_index("offset")
    assert state["state"].to_dict() == {0: "acquired", 1: "acknowledged", 2: "available", 3: "acknowledged",
                                        4: "acquired"}  # fmt: skip
    assert state["owner"].dropna().to_dict() == {0: sc.member_id, 4: sc.member_id}
    assert state["lock_expires"].isna().to_dict() == {0: False, 1: True, 2: True, 3: True, 4: False}
    sc.acknowledge(records[0], "reject")
    sc.commit()
    state = lab.share_state("q")
    assert list(state["offset"]) == [2, 3, 4]  # the start offset moved over 0 (archived) and 1 (accepted)
    (row,) = share_partitions(lab.backend.broker, "q")
    assert (row["start_offset"], row["end_offset"], row["not_yet_delivered"]) == (2, 5, 5)
    assert (row["available"], row["acquired"], row["acknowledged"]) == (1, 1, 1)
    sc.close()  # releases 4; its delivery count stays
    state = lab.share_state("q").set_index("offset")
    assert state.loc[4, "state"] == "available" and state.loc[4, "delivery_count"] == 1
    assert lab.share_state("no-such-group").empty


def test_acknowledgement_rules(tmp_path: Path) -> None:
    clock = streamlab.ManualClock()  # lock expiry is stepped through, not slept through
    lab = streamlab.connect(tmp_path, clock=clock)
    topic = "acks"
    lab.create_topic(topic)
    _produce(lab, topic, 6)
    with pytest.raises(ConfigError, match="lock_ms"):
        lab.share_consumer(topic, group="q", lock_ms=0)
    calls: list[tuple[set[int], bool]] = []
    sc = lab.share_consumer(
        topic, group="q", auto_offset_reset="earliest", lock_ms=1000,
        on_acknowledged=lambda tp, offsets, error: calls.append((offsets, error is None)),
    )  # fmt: skip
    first = sc.poll(timeout=1, max_records=2)
    sc.acknowledge(first[0], "release")
    with pytest.raises(InvalidRecordStateError, match="acknowledged already"):
        sc.acknowledge(first[0], "accept")
    with pytest.raises(ConfigError):
        sc.acknowledge(first[1], "maybe")  # type: ignore[arg-type]
    second = sc.poll(timeout=1, max_records=2)  # sent: 0 released, 1 implicitly accepted
    with pytest.raises(InvalidRecordStateError, match="not held"):
        sc.acknowledge(first[1], "reject")
    assert [r.offset for r in second] == [0, 2]
    clock.advance(0.6)
    sc.renew(second)  # slow work: the lock now runs 1 s from here
    clock.advance(0.6)  # past the first lock, within the renewed one
    assert sc.delivery_count(second[0]) == 2 and sc.delivery_count(second[1]) == 1
    assert sc.commit() == {}  # still held: accepted
    assert sc.delivery_count(second[0]) is None  # sent: no longer held
    third = sc.poll(timeout=1, max_records=1)
    clock.advance(1.0)  # the lock runs out, to the millisecond
    errors = sc.commit()
    assert list(errors) == [TopicPartition(topic, 0)] and errors[TopicPartition(topic, 0)].offsets == [3]
    with pytest.raises(InvalidRecordStateError):
        sc.renew(third)
    assert calls == [({0, 1}, True), ({0, 2}, True), ({3}, False)]  # Kafka's acknowledgement commit callback
    sc.close()
    explicit = lab.share_consumer(topic, group="q2", auto_offset_reset="earliest", acknowledgement_mode="explicit")
    explicit.poll(timeout=1, max_records=1)
    with pytest.raises(ShareGroupError, match="acknowledge the 1 records"):
        explicit.poll(timeout=0)
    explicit.close()
    lab.close()


def test_group_settings_must_agree_while_members_are_live(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    first = lab.share_consumer(topic, group="q", delivery_count_limit=3)
    with pytest.raises(ConfigError, match="same settings"):
        lab.share_consumer(topic, group="q", delivery_count_limit=4)
    with pytest.raises(ConfigError, match="is one the group reads"):
        lab.share_consumer(topic, group="q2", dead_letter_topic=topic)
    first.close()
    lab.share_consumer(topic, group="q", delivery_count_limit=4).close()  # no members: the group takes the new limit


# The state machine of one share-partition, under any interleaving ----------------------------
MEMBERS = ("a", "b", "c")
LIMIT = 3


class SharePartitionMachine(RuleBasedStateMachine):
    """Acquire, acknowledge (accept/release/reject), renew, leave, expire, let time pass and
    restart, in any order: a record is with at most one member and only while its lock
    holds, delivery counts never go down or past the limit, done records never come back,
    SPSO only moves forward, and a restart keeps everything but the locks."""

    def __init__(self) -> None:
        super().__init__()
        self.catalog = Catalog(Path(":memory:"))
        self.store = ShareStore(self.catalog)
        self.config = ShareGroupConfig(delivery_count_limit=LIMIT, max_record_locks=8)
        self.sp = SharePartition("g", "t", 0, self.config, 0, 0)
        self.now = 1_000
        self.log_end = 8  # records in the log from the start; produce adds more
        self.counts: dict[int, int] = {}  # highest delivery count seen per offset
        self.done: set[int] = set()  # accepted or archived
        self.held: dict[int, tuple[str, int]] = {}  # offset -> (member, lock expiry) in our own model
        self.start = 0

    def _save(self) -> None:
        """Save, and check the catalog now says exactly what the partition says."""
        sp = self.sp
        share.save(self.store, sp)
        stored = self.catalog.query('SELECT "offset", state, delivery_count FROM share_records ORDER BY "offset"')
        assert stored == [(o, str(r.state), r.delivery_count) for o, r in sorted(sp.records.items())]
        bounds = self.catalog.query("SELECT start_offset, end_offset FROM share_partitions")
        assert bounds == [(sp.start_offset, sp.end_offset)]

    def _mine(self, member: str) -> set[int]:
        """What ``member`` holds under a lock that has not run out."""
        return {o for o, (m, exp) in self.held.items() if m == member and exp > self.now}

    def _give_back(self, offsets: list[int]) -> None:
        for offset in offsets:
            del self.held[offset]
            if self.counts[offset] >= LIMIT:
                self.done.add(offset)

    @rule(n=st.integers(1, 4))
    def produce(self, n: int) -> None:
        self.log_end += n

    @rule(ms=st.integers(0, 30))
    def tick(self, ms: int) -> None:
        self.now += ms

    @rule()
    def expire(self) -> None:
        dead = self.sp.expire(self.now)
        expired = [o for o, (_, exp) in self.held.items() if exp <= self.now]
        self._give_back(expired)
        assert {d.offset for d in dead} == {o for o in expired if self.counts[o] >= LIMIT}
        assert {d.reason for d in dead} <= {DELIVERY_LIMIT}
        self._save()

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), before=st.booleans())
    def jump_to_a_lock_expiry(self, data: st.DataObject, before: bool) -> None:
        """Time jumps to the very millisecond a lock runs out, or the one before."""
        expiry = data.draw(st.sampled_from(sorted({exp for _, exp in self.held.values()})))
        self.now = max(self.now, expiry - before)

    @rule(member=st.sampled_from(MEMBERS), n=st.integers(1, 4), lock=st.integers(1, 20))
    def acquire(self, member: str, n: int, lock: int) -> None:
        self.expire()
        got = self.sp.acquire(member, n, lock, now_ms=self.now, log_start=0, log_end=self.log_end)
        for offset, count in got:
            assert offset not in self.held, f"{offset} handed to {member} while {self.held[offset][0]} holds it"
            assert offset not in self.done
            assert count == self.counts.get(offset, 0) + 1 <= LIMIT
            self.counts[offset] = count
            self.held[offset] = (member, self.now + lock)
        self._save()

    @rule(kind=st.sampled_from(["accept", "release", "reject"]), data=st.data())
    def acknowledge(self, kind: Any, data: st.DataObject) -> None:
        # mostly offsets someone holds (some with locks run out), sometimes any offset at all
        candidates = sorted(set(self.held) | {self.sp.start_offset, self.log_end})
        offsets = data.draw(st.lists(st.sampled_from(candidates), unique=True, min_size=1, max_size=4))
        owner = self.held[offsets[0]][0] if offsets[0] in self.held else MEMBERS[0]
        member = data.draw(st.sampled_from([owner, *MEMBERS]))
        mine = self._mine(member) & set(offsets)
        refused, dead = self.sp.acknowledge(member, offsets, kind, now_ms=self.now)
        assert set(refused) == set(offsets) - mine
        expected_dead = set(mine) if kind == "reject" else set()
        for offset in mine:
            del self.held[offset]
            if kind == "release" and self.counts[offset] >= LIMIT:
                expected_dead.add(offset)
            if kind != "release" or offset in expected_dead:
                self.done.add(offset)
        assert {d.offset for d in dead} == expected_dead
        self._save()

    @rule(member=st.sampled_from(MEMBERS), lock=st.integers(1, 20))
    def renew(self, member: str, lock: int) -> None:
        mine = sorted(self._mine(member))
        assert self.sp.renew(member, [*mine, self.log_end + 1], lock, now_ms=self.now) == [self.log_end + 1]
        for offset in mine:
            self.held[offset] = (member, self.now + lock)

    @rule(member=st.sampled_from(MEMBERS))
    def leave(self, member: str) -> None:
        self.sp.release_member(member)
        self._give_back([o for o, (m, _) in self.held.items() if m == member])
        self._save()

    @rule()
    def restart(self) -> None:
        self._save()
        (self.sp,) = share.load(self.store, "g", self.config)
        self.sp.expire(self.now)  # what the broker does when it loads share state
        self._give_back(list(self.held))
        self._save()

    @invariant()
    def consistent(self) -> None:
        sp = self.sp
        assert self.start <= sp.start_offset <= sp.end_offset <= self.log_end
        self.start = sp.start_offset
        owners: dict[int, str] = {}
        for offset, rec in sp.records.items():
            assert sp.start_offset <= offset < sp.end_offset
            assert rec.delivery_count == self.counts.get(offset, 0) <= LIMIT
            if rec.state == RecordState.ACQUIRED:
                assert rec.owner is not None and rec.lock_expires_ms is not None
                owners[offset] = rec.owner
            else:
                assert rec.owner is None and rec.lock_expires_ms is None
            if rec.state == RecordState.AVAILABLE:
                assert rec.delivery_count < LIMIT
            assert (rec.state in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)) == (offset in self.done)
        assert owners == {o: m for o, (m, _) in self.held.items()}  # one owner each, the one we handed it to
        assert all(o < sp.start_offset or o in sp.records for o in self.done)
        assert all(o in self.done for o in range(sp.start_offset))
        assert sp.start_offset not in self.done  # SPSO moved as far as it can

    def teardown(self) -> None:
        self.catalog.close()


TestSharePartitionMachine = pytest.mark.slow(SharePartitionMachine.TestCase)  # about 10 s: CI, not the inner loop
TestSharePartitionMachine.settings = settings(
    max_examples=80, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
