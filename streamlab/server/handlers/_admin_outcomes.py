"""What the topic admin APIs share (CreateTopics, CreatePartitions, AlterConfigs).

Each answers every topic or resource it names with an outcome, (error code, message): a
streamlab error's Kafka code and text, or a :class:`Refused` for what Kafka refuses with a
code of its own. A topic named twice in one request is refused (INVALID_REQUEST), and
replica assignments must name this one broker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Final

from streamlab.errors import StreamlabError
from streamlab.server.responses import error_of

INVALID_REPLICA_ASSIGNMENT: Final = 39
INVALID_REQUEST: Final = 42

Outcome = tuple[int, str | None]  # (error code, message); (0, None) when it went well
NAMED_TWICE: Final[Outcome] = (INVALID_REQUEST, "topic named more than once in one request")


class Refused(StreamlabError):
    """A refusal with a Kafka error code no streamlab error stands for (raised and answered
    inside a handler)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def outcome(work: Callable[[], object]) -> Outcome:
    """Run ``work`` (blocking): (0, None), or the code and message of what it raised."""
    try:
        work()
    except Refused as exc:
        return exc.code, str(exc)
    except StreamlabError as exc:
        return error_of(exc).value, str(exc)
    return 0, None


def named_twice(topics: Iterable[Any]) -> frozenset[str]:
    """The names listed more than once among a request's ``topics``."""
    counts = Counter(topic.name for topic in topics)
    return frozenset(name for name, count in counts.items() if count > 1)


def check_replicas(node_id: int, assignments: Iterable[Any]) -> None:
    """Refuse replica assignments naming any broker but this one."""
    if any(list(a.broker_ids) != [node_id] for a in assignments):
        raise Refused(INVALID_REPLICA_ASSIGNMENT, f"every replica must be broker {node_id}")
