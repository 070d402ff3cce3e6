"""The share-group APIs at the protocol level: error codes a client must be able to rely on.

Raw kio requests (tests/server/kafka_wire.py) against a real `streamlab serve`: session
epochs, members the group does not know, a name taken by a classic consumer group,
malformed acknowledgements, topic IDs in Metadata, and group configs.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer
from harness import ServerProcess
from kafka_wire import RawClient, kio_request, records
from test_protocol import produce

from streamlab.protocol.record_batch import decode_batches

MS = datetime.timedelta(milliseconds=1)
UNKNOWN_MEMBER_ID, INVALID_REQUEST, INVALID_CONFIG = 25, 42, 40
GROUP_ID_NOT_FOUND, UNKNOWN_TOPIC_ID = 69, 100
INVALID_RECORD_STATE, SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH = 121, 122, 123


def topic_id(client: RawClient, topic: str) -> uuid.UUID:
    body = kio_request(3, 12, topics=[{"name": topic, "topic_id": None}], allow_auto_topic_creation=False,
                       include_topic_authorized_operations=False)  # fmt: skip
    response = client.call(body)
    assert response.topics[0].error_code.value == 0
    return response.topics[0].topic_id


def heartbeat(client: RawClient, group: str, member: str, epoch: int, topics: list[str] | None = None) -> Any:
    return client.call(kio_request(76, 1, group_id=group, member_id=member, member_epoch=epoch, rack_id=None,
                                   subscribed_topic_names=topics))  # fmt: skip


def share_fetch(client: RawClient, group: str, member: str, epoch: int, tid: uuid.UUID | None,
                acks: list[dict[str, Any]] | None = None, max_wait_ms: int = 0,
                max_bytes: int = 1 << 20) -> Any:  # fmt: skip
    topics = [] if tid is None else [{"topic_id": tid, "partitions": [
        {"partition_index": 0, "acknowledgement_batches": acks or []}]}]  # fmt: skip
    return client.call(kio_request(78, 1, group_id=group, member_id=member, share_session_epoch=epoch,
                                   max_wait=max_wait_ms * MS, min_bytes=1, max_bytes=max_bytes, max_records=100,
                                   batch_size=100, topics=topics, forgotten_topics_data=[]))  # fmt: skip


def share_ack(
    client: RawClient, group: str, member: str, epoch: int, tid: uuid.UUID, acks: list[dict[str, Any]]
) -> Any:
    return client.call(kio_request(79, 1, group_id=group, member_id=member, share_session_epoch=epoch, topics=[
        {"topic_id": tid, "partitions": [{"partition_index": 0, "acknowledgement_batches": acks}]}]))  # fmt: skip


def set_group_configs(client: RawClient, group: str, configs: dict[str, str]) -> Any:
    return client.call(kio_request(44, 1, validate_only=False, resources=[{
        "resource_type": 32, "resource_name": group,
        "configs": [{"name": k, "config_operation": 0, "value": v} for k, v in configs.items()]}]))  # fmt: skip


def test_a_member_fetches_acknowledges_and_sessions_are_checked(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(1)
    with RawClient(shared_server.bootstrap) as client:
        assert produce(client, topic, records(b"a", b"b", b"c")).error_code.value == 0
        tid = topic_id(client, topic)
        assert tid.int != 0 and topic_id(client, topic) == tid, "a stable, non-zero topic ID"
        group, member = f"raw-{topic}", uuid.uuid4().hex
        assert (
            set_group_configs(client, group, {"share.auto.offset.reset": "earliest"}).responses[0].error_code.value == 0
        )
        joined = heartbeat(client, group, member, 0, [topic])
        assert joined.error_code.value == 0 and joined.member_epoch >= 1
        assigned = joined.assignment.topic_partitions
        assert [(tp.topic_id, tuple(tp.partitions)) for tp in assigned] == [(tid, (0,))]

        fetched = share_fetch(client, group, member, 0, tid, max_wait_ms=2000)
        assert fetched.error_code.value == 0 and fetched.acquisition_lock_timeout == 30_000 * MS
        part = fetched.responses[0].partitions[0]
        assert [(a.first_offset, a.last_offset, a.delivery_count) for a in part.acquired_records] == [(0, 2, 1)]
        assert [r.value for b in decode_batches(part.records) for r in b.records] == [b"a", b"b", b"c"]

        # epochs: 0 opened the session; the next request must carry 1
        assert share_fetch(client, group, member, 5, None).error_code.value == INVALID_SHARE_SESSION_EPOCH
        assert share_ack(client, group, member, 0, tid, []).error_code.value == INVALID_SHARE_SESSION_EPOCH
        # accept 0..1, release 2 (one type per offset)
        acked = share_ack(client, group, member, 1, tid, [{"first_offset": 0, "last_offset": 2,
                                                             "acknowledge_types": [1, 1, 2]}])  # fmt: skip
        assert acked.error_code.value == 0 and acked.responses[0].partitions[0].error_code.value == 0
        # acknowledging again what is no longer held is INVALID_RECORD_STATE for that partition
        again = share_ack(client, group, member, 2, tid, [{"first_offset": 0, "last_offset": 0,
                                                           "acknowledge_types": [1]}])  # fmt: skip
        assert again.responses[0].partitions[0].error_code.value == INVALID_RECORD_STATE
        # a malformed batch (two types for three offsets) is INVALID_REQUEST, and nothing changes
        bad = share_fetch(client, group, member, 3, tid, acks=[{"first_offset": 0, "last_offset": 2,
                                                                "acknowledge_types": [1, 1]}])  # fmt: skip
        assert bad.responses[0].partitions[0].acknowledge_error_code == INVALID_REQUEST
        # the released record comes back, on its second delivery
        part = bad.responses[0].partitions[0]
        assert [(a.first_offset, a.last_offset, a.delivery_count) for a in part.acquired_records] == [(2, 2, 2)]
        # closing the session (epoch -1) with an acknowledgement; then the session is gone
        closing = share_fetch(client, group, member, -1, tid, acks=[{"first_offset": 2, "last_offset": 2,
                                                                     "acknowledge_types": [1]}])  # fmt: skip
        assert closing.error_code.value == 0 and not closing.responses[0].partitions[0].acquired_records
        assert share_fetch(client, group, member, 4, None).error_code.value == SHARE_SESSION_NOT_FOUND
        left = heartbeat(client, group, member, -1)
        assert left.error_code.value == 0 and left.member_epoch == -1
        assert heartbeat(client, group, member, 1).error_code.value == UNKNOWN_MEMBER_ID
        assert share_fetch(client, group, member, 0, tid).error_code.value == UNKNOWN_MEMBER_ID


def test_share_group_names_and_configs_are_checked(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(1)
    classic = f"classic-{topic}"
    consumer = Consumer({"bootstrap.servers": shared_server.bootstrap, "group.id": classic,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    with RawClient(shared_server.bootstrap) as client:
        produce(client, topic, records(b"x"))
        consumer.subscribe([topic])
        while consumer.poll(0.5) is None:
            pass
        consumer.commit(asynchronous=False)
        # a classic consumer group's name cannot become a share group's: GROUP_ID_NOT_FOUND, as Kafka
        assert heartbeat(client, classic, uuid.uuid4().hex, 0, [topic]).error_code.value == GROUP_ID_NOT_FOUND
        # a join needs topics and a member id
        assert heartbeat(client, f"g-{topic}", uuid.uuid4().hex, 0, None).error_code.value == INVALID_REQUEST
        assert heartbeat(client, f"g-{topic}", "", 0, [topic]).error_code.value == INVALID_REQUEST
        # group configs: unknown names and out-of-range values are INVALID_CONFIG
        assert set_group_configs(client, f"g-{topic}", {"share.no.such": "1"}).responses[0].error_code.value == (
            INVALID_CONFIG
        )
        assert (
            set_group_configs(client, f"g-{topic}", {"share.record.lock.duration.ms": "5"})
            .responses[0]
            .error_code.value
            == INVALID_CONFIG
        )
        # a topic ID nobody gave out
        unknown = share_fetch(client, f"g-{topic}", "nobody", 0, uuid.uuid4())
        assert unknown.error_code.value == UNKNOWN_MEMBER_ID
        member = uuid.uuid4().hex
        heartbeat(client, f"g-{topic}", member, 0, [topic])
        stranger = share_fetch(client, f"g-{topic}", member, 0, uuid.uuid4())
        assert stranger.responses[0].partitions[0].error_code.value == UNKNOWN_TOPIC_ID
    consumer.close()


def test_a_lock_renewed_with_share_acknowledge_v2_outlives_its_first_duration(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(1)
    group, member = f"renew-{topic}", uuid.uuid4().hex
    with RawClient(shared_server.bootstrap) as client:
        produce(client, topic, records(b"slow", b"fast"))
        tid = topic_id(client, topic)
        configs = {"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "1000"}
        assert set_group_configs(client, group, configs).responses[0].error_code.value == 0
        heartbeat(client, group, member, 0, [topic])
        fetched = share_fetch(client, group, member, 0, tid, max_wait_ms=2000)
        assert fetched.acquisition_lock_timeout == 1000 * MS
        assert [(a.first_offset, a.last_offset) for a in fetched.responses[0].partitions[0].acquired_records] == [
            (0, 1)
        ]
        time.sleep(0.7)
        renew = kio_request(79, 2, group_id=group, member_id=member, share_session_epoch=1, is_renew_ack=True, topics=[
            {"topic_id": tid, "partitions": [{"partition_index": 0, "acknowledgement_batches": [
                {"first_offset": 0, "last_offset": 0, "acknowledge_types": [4]}]}]}])  # fmt: skip
        assert client.call(renew).responses[0].partitions[0].error_code.value == 0
        time.sleep(0.7)  # 1.4 s after the fetch: offset 0 was renewed, offset 1 was not
        late = share_ack(client, group, member, 2, tid, [{"first_offset": 0, "last_offset": 0,
                                                          "acknowledge_types": [1]}])  # fmt: skip
        assert late.responses[0].partitions[0].error_code.value == 0, "the renewed lock still held"
        expired = share_ack(client, group, member, 3, tid, [{"first_offset": 1, "last_offset": 1,
                                                             "acknowledge_types": [1]}])  # fmt: skip
        assert expired.responses[0].partitions[0].error_code.value == INVALID_RECORD_STATE


def test_share_fetch_is_bounded_by_max_bytes_and_gives_back_what_did_not_fit(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(1)
    values = [bytes([65 + i]) * 10_000 for i in range(6)]
    with RawClient(shared_server.bootstrap) as client:
        assert produce(client, topic, records(*values)).error_code.value == 0
        tid = topic_id(client, topic)
        group = f"bytes-{topic}"
        set_group_configs(client, group, {"share.auto.offset.reset": "earliest"})
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        heartbeat(client, group, first, 0, [topic])
        heartbeat(client, group, second, 0, [topic])

        def fetched(member: str, epoch: int, max_bytes: int) -> tuple[list[tuple[int, int, int]], list[bytes]]:
            response = share_fetch(client, group, member, epoch, tid, max_wait_ms=1000, max_bytes=max_bytes)
            part = response.responses[0].partitions[0]
            acquired = [(a.first_offset, a.last_offset, a.delivery_count) for a in part.acquired_records]
            return acquired, [r.value for b in decode_batches(part.records) for r in b.records]

        # two 10 kB records fit in 25,000 bytes, a third does not: it stays available, undelivered
        assert fetched(first, 0, 25_000) == ([(0, 1, 1)], values[:2])
        # a limit smaller than one record still gets one (as Fetch), never none
        assert fetched(second, 0, 100) == ([(2, 2, 1)], values[2:3])
        assert fetched(second, 1, 1 << 20) == ([(3, 5, 1)], values[3:])  # delivery count 1, not 2
