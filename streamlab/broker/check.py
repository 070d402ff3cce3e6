"""``streamlab check``: verify every stored file of a data directory, and repair what is damaged.

Opening the directory already runs recovery (torn tails cut, damage and missing files
found, a lost catalog rebuilt), each reported as a :class:`RecoveryWarning`; checking then
reads every sealed segment in full against its checksums. Repair takes damaged parts out
of the logs, keeping the files under ``<data>/damaged/`` (see ``PartitionLog.repair``).
"""

from __future__ import annotations

from dataclasses import dataclass

from streamlab.broker.core import Broker

QUARANTINE = "damaged"


@dataclass(frozen=True, slots=True)
class Problem:
    """Offsets ``start``..``end - 1`` of a partition that cannot be served, and why."""

    topic: str
    partition: int
    path: str
    start: int
    end: int
    reason: str

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition} offsets {self.start}..{self.end - 1}: {self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class CheckReport:
    partitions: int
    segments: int
    segment_bytes: int
    problems: list[Problem]


def check(broker: Broker) -> CheckReport:
    problems: list[Problem] = []
    partitions = segments = size = 0
    with broker.lock:
        logs = [(name, log) for name, state in broker.topics.items() for log in state.logs]
    for name, log in logs:
        partitions += 1
        sealed = log.sealed_segments()
        segments += len(sealed)
        size += sum(s.bytes for s in sealed)
        for damage in log.check():
            problems.append(Problem(name, log.partition, damage.path, damage.start, damage.end, damage.reason))
    return CheckReport(partitions, segments, size, problems)


def repair(broker: Broker) -> list[str]:
    """Take every damaged part out of every log (after :func:`check` found it)."""
    done: list[str] = []
    with broker.lock:
        for state in broker.topics.values():
            for log in state.logs:
                if log.damage:
                    done.extend(log.repair(broker.data_dir / QUARANTINE))
    return done
