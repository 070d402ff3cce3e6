"""Share sessions (KIP-932): the partitions a share-group member fetches from one broker.

A member opens a session with a ShareFetch of epoch 0 naming its partitions, then sends
each following ShareFetch or ShareAcknowledge with the next epoch and only what changed
(partitions added, partitions forgotten). Epoch -1 closes the session. A request whose
epoch is not the one expected is refused (INVALID_SHARE_SESSION_EPOCH), and one for a
session the broker does not have (a restart, an expired member) gets
SHARE_SESSION_NOT_FOUND, which makes the client open a new session.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from streamlab.model.types import TopicPartition

SHARE_SESSION_NOT_FOUND = 122
INVALID_SHARE_SESSION_EPOCH = 123
INITIAL_EPOCH = 0
FINAL_EPOCH = -1


class SessionError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ShareSession:
    group_id: str
    member_id: str
    next_epoch: int = 1
    partitions: set[TopicPartition] = field(default_factory=set)


class ShareSessions:
    """Every open share session of one server, by (group, member)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str], ShareSession] = {}

    def use(self, group_id: str, member_id: str, epoch: int, *, opening_allowed: bool = True) -> ShareSession:
        """The session a request with ``epoch`` belongs to, opened anew for epoch 0.

        The epoch advances here, so a request is checked and counted in one step.
        """
        key = (group_id, member_id)
        with self._lock:
            if epoch == INITIAL_EPOCH:
                if not opening_allowed:
                    raise SessionError(INVALID_SHARE_SESSION_EPOCH, "a share session is opened by a ShareFetch")
                session = self._sessions[key] = ShareSession(group_id, member_id)
                return session
            session_or_none = self._sessions.get(key)
            if session_or_none is None:
                raise SessionError(SHARE_SESSION_NOT_FOUND, f"no share session for member {member_id!r}")
            if epoch == FINAL_EPOCH:
                return session_or_none
            if epoch != session_or_none.next_epoch:
                raise SessionError(
                    INVALID_SHARE_SESSION_EPOCH,
                    f"share session epoch {epoch} is not the expected {session_or_none.next_epoch}",
                )
            session_or_none.next_epoch = epoch + 1 if epoch < 2**31 - 1 else 1
            return session_or_none

    def close(self, group_id: str, member_id: str) -> None:
        with self._lock:
            self._sessions.pop((group_id, member_id), None)
