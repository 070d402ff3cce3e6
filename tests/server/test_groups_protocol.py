"""The group APIs byte for byte: Kafka's classic group protocol as a raw client sees it.

Each step is one request on its own connection (members are separate clients); a
JoinGroup or SyncGroup that must wait for other members runs in a thread while the test
sends the requests that release it.
"""

from __future__ import annotations

import datetime
import itertools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from harness import ServerProcess
from kafka_wire import KAFKA_PYTHON, RawClient, kio_request, sample_frame

from streamlab.groups.consumer_protocol import decode_assignment, encode_assignment, encode_subscription
from streamlab.model.types import TopicPartition
from streamlab.protocol.framing import SUPPORTED_APIS

MS = datetime.timedelta(milliseconds=1)
NONE, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS = 0, 22, 25, 27
MEMBER_ID_REQUIRED, FENCED_INSTANCE_ID = 79, 82
_groups = itertools.count()
GROUP_APIS = (8, 9, 10, 11, 12, 13, 14, 15, 16)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


def call(server: ServerProcess, api_key: int, version: int, **fields: Any) -> Any:
    with RawClient(server.bootstrap, timeout=30) as client:
        return client.call(kio_request(api_key, version, **fields))


def join(server: ServerProcess, group: str, topic: str, member_id: str = "", **extra: Any) -> Any:
    return call(
        server, 11, 9, group_id=group, session_timeout=10_000 * MS, rebalance_timeout=10_000 * MS,
        member_id=member_id, protocol_type="consumer",
        protocols=[{"name": "range", "metadata": encode_subscription([topic])}], **extra,
    )  # fmt: skip


def join_new(server: ServerProcess, group: str, topic: str) -> str:
    """JoinGroup v4+ with no member id: MEMBER_ID_REQUIRED hands one out."""
    first = join(server, group, topic)
    assert first.error_code.value == MEMBER_ID_REQUIRED and first.generation_id == -1
    assert first.member_id
    return str(first.member_id)


def sync(server: ServerProcess, group: str, generation: int, member_id: str, assignments: dict[str, bytes]) -> Any:
    return call(
        server, 14, 5, group_id=group, generation_id=generation, member_id=member_id, group_instance_id=None,
        protocol_type="consumer", protocol_name="range",
        assignments=[{"member_id": m, "assignment": a} for m, a in assignments.items()],
    )  # fmt: skip


def heartbeat(server: ServerProcess, group: str, generation: int, member_id: str, instance: str | None = None) -> int:
    response = call(
        server, 12, 4, group_id=group, generation_id=generation, member_id=member_id, group_instance_id=instance
    )
    return int(response.error_code.value)


def commit(server: ServerProcess, group: str, topic: str, generation: int, member_id: str, offset: int) -> int:
    response = call(
        server, 8, 8, group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
        group_instance_id=None,
        topics=[{"name": topic, "partitions": [
            {"partition_index": 0, "committed_offset": offset, "committed_leader_epoch": -1,
             "committed_metadata": "m"}]}],
    )  # fmt: skip
    return int(response.topics[0].partitions[0].error_code.value)


def test_two_members_join_the_leader_assigns_and_stale_commits_are_refused(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str], pool: ThreadPoolExecutor
) -> None:
    server, topic, group = shared_server, create_shared_topic(partitions=2), f"raw-{next(_groups)}"
    a = join_new(server, group, topic)
    first = join(server, group, topic, a)
    assert first.error_code.value == NONE and first.generation_id == 1 and first.leader == a
    assert [m.member_id for m in first.members] == [a]
    whole = encode_assignment([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    assert sync(server, group, 1, a, {a: whole}).assignment == whole
    assert commit(server, group, topic, 1, a, 5) == NONE

    # A second member joins: its JoinGroup waits until the first rejoins.
    b = join_new(server, group, topic)
    b_join: Future[Any] = pool.submit(join, server, group, topic, b)
    deadline = time.monotonic() + 10
    while heartbeat(server, group, 1, a) != REBALANCE_IN_PROGRESS:  # once b's JoinGroup has arrived
        assert time.monotonic() < deadline, "b's JoinGroup did not start a rebalance"
        time.sleep(0.02)
    assert commit(server, group, topic, 1, a, 6) == NONE  # allowed until the generation moves (onRevoke)
    a_join = join(server, group, topic, a)
    b_answer = b_join.result(timeout=20)
    assert a_join.generation_id == b_answer.generation_id == 2
    assert a_join.leader == b_answer.leader == a  # the leader stays the leader
    assert {m.member_id for m in a_join.members} == {a, b} and b_answer.members == ()
    assert a_join.protocol_name == b_answer.protocol_name == "range"

    # b's SyncGroup waits for the leader's, then gets what the leader gave it.
    b_sync: Future[Any] = pool.submit(sync, server, group, 2, b, {})
    for_a, for_b = encode_assignment([TopicPartition(topic, 0)]), encode_assignment([TopicPartition(topic, 1)])
    assert sync(server, group, 2, a, {a: for_a, b: for_b}).assignment == for_a
    assert decode_assignment(b_sync.result(timeout=20).assignment) == (TopicPartition(topic, 1),)

    assert commit(server, group, topic, 1, a, 7) == ILLEGAL_GENERATION  # an old generation
    assert commit(server, group, topic, 2, "nobody", 7) == UNKNOWN_MEMBER_ID
    assert commit(server, group, topic, -1, "", 7) == UNKNOWN_MEMBER_ID  # only members, while it has some
    assert commit(server, group, topic, 2, b, 8) == NONE
    fetched = call(server, 9, 8, groups=[{"group_id": group, "topics": None}, {"group_id": "nothing", "topics": None}],
                   require_stable=True)  # fmt: skip
    assert [g.group_id for g in fetched.groups] == [group, "nothing"]
    (committed,) = fetched.groups[0].topics
    assert (committed.name, committed.partitions[0].committed_offset, committed.partitions[0].metadata) == (
        topic, 8, "m"
    )  # fmt: skip
    assert fetched.groups[1].topics == ()

    described = call(server, 15, 5, groups=[group], include_authorized_operations=False).groups[0]
    assert (described.group_state, described.protocol_type, described.protocol_data) == ("Stable", "consumer", "range")
    assert {m.member_id: m.member_assignment for m in described.members} == {a: for_a, b: for_b}
    assert all(m.client_host == "/127.0.0.1" for m in described.members)
    listed = call(server, 16, 4, states_filter=["stable"]).groups
    assert (group, "consumer", "Stable") in [(g.group_id, g.protocol_type, g.group_state) for g in listed]

    # b leaves (v5 lists members); a must rejoin, alone, into generation 3.
    left = call(server, 13, 5, group_id=group, members=[{"member_id": b, "group_instance_id": None, "reason": "bye"}])
    assert left.error_code.value == NONE and [m.error_code.value for m in left.members] == [NONE]
    assert heartbeat(server, group, 2, a) == REBALANCE_IN_PROGRESS
    assert heartbeat(server, group, 2, b) == UNKNOWN_MEMBER_ID
    assert join(server, group, topic, a).generation_id == 3


def test_a_restarted_static_member_takes_over_and_fences_the_old_one(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    server, topic, group = shared_server, create_shared_topic(partitions=2), f"raw-{next(_groups)}"
    first = join(server, group, topic, group_instance_id="worker-1")  # static: no MEMBER_ID_REQUIRED
    assert first.error_code.value == NONE and first.generation_id == 1
    old = first.member_id
    whole = encode_assignment([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    assert sync(server, group, 1, old, {old: whole}).error_code.value == NONE

    again = join(server, group, topic, group_instance_id="worker-1")  # the restarted process
    assert again.error_code.value == NONE and again.member_id != old
    assert again.generation_id == 1  # no rebalance: same generation, same assignment
    assert again.leader == again.member_id and again.skip_assignment
    assert sync(server, group, 1, again.member_id, {}).assignment == whole
    assert heartbeat(server, group, 1, old, "worker-1") == FENCED_INSTANCE_ID
    assert heartbeat(server, group, 1, again.member_id, "worker-1") == NONE
    left = call(server, 13, 4, group_id=group, members=[{"member_id": "", "group_instance_id": "worker-1"}])
    assert [m.error_code.value for m in left.members] == [NONE]
    described = call(server, 15, 5, groups=[group], include_authorized_operations=True).groups[0]
    assert described.group_state == "Empty" and described.members == ()


@pytest.mark.parametrize("version", [0, 3])
def test_old_join_versions_need_no_member_id_round_trip(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str], version: int
) -> None:
    topic, group = create_shared_topic(partitions=1), f"raw-{next(_groups)}"
    fields: dict[str, Any] = {"rebalance_timeout": 10_000 * MS} if version else {}
    answer = call(
        shared_server, 11, version, group_id=group, session_timeout=10_000 * MS, member_id="",
        protocol_type="consumer", protocols=[{"name": "range", "metadata": encode_subscription([topic])}], **fields,
    )  # fmt: skip
    assert answer.error_code.value == NONE and answer.generation_id == 1 and answer.leader == answer.member_id
    assert answer.protocol_name == "range"


def test_find_coordinator_answers_every_key_with_this_node(shared_server: ServerProcess) -> None:
    host, port = shared_server.bootstrap.split(":")
    batched = call(shared_server, 10, 4, key_type=0, coordinator_keys=["a", "b", "c"]).coordinators
    assert [(c.key, c.node_id, c.host, c.port, c.error_code.value) for c in batched] == [
        (k, 0, host, int(port), NONE) for k in "abc"
    ]
    single = call(shared_server, 10, 0, key="g")
    assert (single.error_code.value, single.node_id, single.host, single.port) == (NONE, 0, host, int(port))
    share = call(shared_server, 10, 3, key="g", key_type=2)
    assert share.error_code.value == 42  # INVALID_REQUEST: share groups are not coordinated here


@pytest.mark.parametrize(
    ("api_key", "version"),
    [(k, v) for k in GROUP_APIS if k in KAFKA_PYTHON for v in range(SUPPORTED_APIS[k][0], SUPPORTED_APIS[k][1] + 1)],
)
def test_every_version_of_the_group_apis_is_answered(shared_server: ServerProcess, api_key: int, version: int) -> None:
    # kafka-python's encoding with every field set (unknown groups and members, 3 ms timeouts).
    with RawClient(shared_server.bootstrap) as client:
        client.sock.sendall(sample_frame(api_key, version, correlation_id=7))
        assert client.recv(api_key, version, correlation_id=7) is not None
