"""Consumer-protocol payloads that are not consumer protocol, sent over a raw socket.

Kafka's group coordinator passes JoinGroup metadata and SyncGroup assignments on as opaque
bytes (the leader's client reads them) and only warns that it cannot tell the group's
subscriptions. `streamlab serve` does the same: the request is answered with NONE, the
bytes come back as sent, and the log has one warning line and no traceback.
"""

from __future__ import annotations

import datetime
import struct

import pytest
from harness import ServerProcess
from kafka_wire import RawClient, kio_request

JOIN_GROUP, SYNC_GROUP = 11, 14
S = datetime.timedelta(seconds=1)

# version 0 subscription / assignment whose arrays have length -1 (null): kio reads them
# as None, which the decoder used to iterate (TypeError, a traceback, a closed connection)
NULL_TOPICS = struct.pack(">hii", 0, -1, -1)
NULL_PARTITIONS = struct.pack(">hih1sii", 0, 1, 1, b"t", -1, -1)
TRUNCATED = b"\x00\x01\x00\x00\x00\x05\x00"  # five topics announced, none there
NEGATIVE_VERSION = b"\xff\xfe"


def join(client: RawClient, group: str, metadata: bytes) -> object:
    body = kio_request(
        JOIN_GROUP, 5, group_id=group, session_timeout=10 * S, rebalance_timeout=S, member_id="",
        group_instance_id="static-1", protocol_type="consumer", protocols=[{"name": "range", "metadata": metadata}],
    )  # fmt: skip
    return client.call(body)


@pytest.mark.parametrize(
    ("metadata", "malformed"),
    [
        (NULL_TOPICS, 2),
        (NULL_PARTITIONS, 1),  # a valid v0 subscription (its user data null), not a valid assignment
        (TRUNCATED, 2),
        (NEGATIVE_VERSION, 2),
    ],
)
def test_malformed_subscription_and_assignment_get_answers_and_a_warning(
    shared_server: ServerProcess, metadata: bytes, malformed: int
) -> None:
    group = f"malformed-{metadata.hex()}"
    before = len(shared_server.log())
    with RawClient(shared_server.bootstrap) as client:
        joined = join(client, group, metadata)
        assert joined.error_code == 0, joined
        assert joined.leader == joined.member_id
        assert [bytes(m.metadata) for m in joined.members] == [metadata]  # passed on as sent
        sync = kio_request(
            SYNC_GROUP, 3, group_id=group, generation_id=joined.generation_id, member_id=joined.member_id,
            group_instance_id="static-1", assignments=[{"member_id": joined.member_id, "assignment": metadata}],
        )  # fmt: skip
        synced = client.call(sync)
        assert synced.error_code == 0, synced
        assert bytes(synced.assignment) == metadata
    log = shared_server.log()[before:]
    assert "Traceback" not in log and " ERROR " not in log, log
    warnings = [line for line in log.splitlines() if f"group '{group}'" in line]
    assert len(warnings) == malformed, log  # one per malformed request
    assert all(" WARNING " in line and "not consumer protocol" in line for line in warnings), warnings
