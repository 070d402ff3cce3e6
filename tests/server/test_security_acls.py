"""Kafka ACLs on `streamlab serve`: managed with Kafka's admin API, enforced per request.

One server for the module with users alice, bob and admin (``--super-users User:admin``)
and Kafka's default for resources without ACLs: deny. Each test uses its own topic names.
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from harness import ServerProcess
from secure_harness import USERS, SecureServer, confluent_config, users_file

from streamlab.errors import ConfigError, InvalidAclError
from streamlab.server.security.acls import (
    AclBinding as Binding,
)
from streamlab.server.security.acls import (
    AclFilter,
    Authorizer,
    Operation,
    PatternType,
    Permission,
)
from streamlab.server.security.acls import (
    ResourceType as Resource,
)

with warnings.catch_warnings():  # kafka-python loads schemas with deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KpResource
    from kafka.errors import ClusterAuthorizationFailedError

_names = itertools.count()
_admins: dict[tuple[str, str], AdminClient] = {}
ALL_ACLS = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                            AclPermissionType.ANY)  # fmt: skip


def _start(tmp: Path) -> SecureServer:
    proc = SecureServer(tmp / "data", tmp / "server.log",
                        ["--users-file", str(users_file(tmp)), "--super-users", "User:admin"])  # fmt: skip
    proc.start()
    return proc


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    proc = _start(tmp_path_factory.mktemp("acls"))
    try:
        yield proc
    finally:
        _admins.clear()  # destroys the clients before their server goes
        proc.kill()


def _config(server: ServerProcess, user: str) -> dict[str, Any]:
    return confluent_config(server, protocol="SASL_PLAINTEXT", mechanism="SCRAM-SHA-256", user=user)


def _admin(server: ServerProcess, user: str = "admin") -> AdminClient:
    # Kept for the module: a client that is garbage-collected fails its pending futures.
    key = (server.bootstrap, user)
    if key not in _admins:
        _admins[key] = AdminClient(_config(server, user))
    return _admins[key]


def _name(prefix: str = "acl") -> str:
    return f"{prefix}-{next(_names)}"


def _create_topic(server: ServerProcess, name: str) -> None:
    _admin(server).create_topics([NewTopic(name, 1, 1)], operation_timeout=10)[name].result(timeout=10)


def _allow(principal: str, resource: ResourceType, name: str, op: AclOperation,
           pattern: ResourcePatternType = ResourcePatternType.LITERAL,
           permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:  # fmt: skip
    return AclBinding(resource, name, pattern, principal, "*", op, permission)


def _grant(server: ServerProcess, *bindings: AclBinding) -> None:
    admin = _admin(server)
    for future in admin.create_acls(list(bindings), request_timeout=10).values():
        assert future.result(timeout=10) is None


def _produce(server: ServerProcess, user: str, topic: str, value: bytes = b"v", **extra: Any) -> KafkaError | None:
    producer = Producer({**_config(server, user), "message.timeout.ms": 5000, **extra})
    outcome: list[KafkaError | None] = []
    producer.produce(topic, value, on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(10)
    assert len(outcome) == 1
    return outcome[0]


def _fetch_error(server: ServerProcess, user: str, topic: str) -> KafkaError | None:
    """The first error (or None after one record) of an assigned consumer."""
    consumer = Consumer({**_config(server, user), "group.id": f"g-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                return msg.error()
        raise AssertionError("no record and no error")
    finally:
        consumer.close()


def test_acl_apis_round_trip_with_the_admin_client(acl_server: SecureServer) -> None:
    topic = _name()
    bindings = [
        _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.READ),
        _allow("User:bob", ResourceType.TOPIC, "rt-", AclOperation.WRITE, ResourcePatternType.PREFIXED),
        _allow("User:*", ResourceType.GROUP, topic, AclOperation.ALL, permission=AclPermissionType.DENY),
        _allow("User:alice", ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE),
    ]
    _grant(acl_server, *bindings)
    admin = _admin(acl_server)
    described = admin.describe_acls(ALL_ACLS, request_timeout=10).result(timeout=10)
    assert set(bindings) <= set(described)
    only_alice = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                                  AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    assert set(admin.describe_acls(only_alice).result(timeout=10)) >= {bindings[0], bindings[3]}
    assert "User:bob" not in {b.principal for b in admin.describe_acls(only_alice).result(timeout=10)}
    # MATCH finds the bindings that apply to a name: the prefixed one for rt-anything.
    match = AclBindingFilter(ResourceType.TOPIC, "rt-x", ResourcePatternType.MATCH, None, None, AclOperation.ANY,
                             AclPermissionType.ANY)  # fmt: skip
    assert admin.describe_acls(match).result(timeout=10) == [bindings[1]]
    deleted = {}
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                                b.permission_type) for b in bindings]  # fmt: skip
    for f, future in admin.delete_acls(filters, request_timeout=10).items():
        deleted[f] = future.result(timeout=10)
    assert sorted(map(str, (b for found in deleted.values() for b in found))) == sorted(map(str, bindings))
    assert not set(bindings) & set(admin.describe_acls(ALL_ACLS).result(timeout=10))


def test_only_super_users_or_cluster_alter_manage_acls(acl_server: SecureServer) -> None:
    binding = _allow("User:bob", ResourceType.TOPIC, _name(), AclOperation.ALL)
    future = _admin(acl_server, "bob").create_acls([binding], request_timeout=10)[binding]
    with pytest.raises(KafkaException) as info:
        future.result(timeout=10)
    assert info.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # librdkafka answers a refused DescribeAcls with an empty list, so ask with kafka-python,
    # which raises the broker's error.
    assert _admin(acl_server, "bob").describe_acls(ALL_ACLS, request_timeout=10).result(timeout=10) == []
    admin = KafkaAdminClient(bootstrap_servers=acl_server.bootstrap, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="bob",
                             sasl_plain_password=USERS["bob"])  # fmt: skip
    try:
        pattern = ResourcePatternFilter(KpResource.ANY, None, ACLResourcePatternType.ANY)
        kp_filter = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                              permission_type=ACLPermissionType.ANY, resource_pattern=pattern)  # fmt: skip
        with pytest.raises(ClusterAuthorizationFailedError, match="User:bob may not DESCRIBE"):
            admin.describe_acls(kp_filter)
    finally:
        admin.close()


def test_produce_needs_write_and_fetch_needs_read(acl_server: SecureServer) -> None:
    topic = _name()
    _create_topic(acl_server, topic)
    _grant(acl_server, _allow("User:alice", ResourceType.GROUP, f"g-{topic}", AclOperation.READ))  # _fetch_error's
    denied = _produce(acl_server, "alice", topic)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    _grant(acl_server, _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.WRITE))
    assert _produce(acl_server, "alice", topic, b"first") is None
    # WRITE on a topic also lets an idempotent producer get its id (InitProducerId, KIP-679).
    assert _produce(acl_server, "alice", topic, b"second", **{"enable.idempotence": True}) is None
    # WRITE implies DESCRIBE but not READ.
    error = _fetch_error(acl_server, "alice", topic)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    _grant(acl_server, _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.READ))
    assert _fetch_error(acl_server, "alice", topic) is None
    # bob still has nothing on it.
    denied = _produce(acl_server, "bob", topic)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_deny_beats_allow(acl_server: SecureServer) -> None:
    prefix = _name("deny") + "-"
    blocked, open_ = prefix + "blocked", prefix + "open"
    for topic in (blocked, open_):
        _create_topic(acl_server, topic)
    _grant(
        acl_server,
        _allow("User:bob", ResourceType.TOPIC, prefix, AclOperation.ALL, ResourcePatternType.PREFIXED),
        _allow("User:*", ResourceType.TOPIC, blocked, AclOperation.WRITE, permission=AclPermissionType.DENY),
    )
    assert _produce(acl_server, "bob", open_) is None
    denied = _produce(acl_server, "bob", blocked)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_super_user_can_do_everything(acl_server: SecureServer) -> None:
    topic = _name()
    _create_topic(acl_server, topic)
    assert _produce(acl_server, "admin", topic, b"x") is None
    consumer = Consumer({**_config(acl_server, "admin"), "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 15
        msg = None
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
        assert msg is not None and msg.error() is None and msg.value() == b"x"
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    admin = _admin(acl_server)
    admin.delete_topics([topic], operation_timeout=10)[topic].result(timeout=10)
    assert topic not in admin.list_topics(timeout=10).topics


def test_create_delete_and_describe_topics_are_checked(acl_server: SecureServer) -> None:
    mine, hidden = _name("own"), _name("hidden")
    _create_topic(acl_server, hidden)
    alice = _admin(acl_server, "alice")
    with pytest.raises(KafkaException) as info:
        alice.create_topics([NewTopic(mine, 1, 1)], operation_timeout=10)[mine].result(timeout=10)
    assert info.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    _grant(acl_server, _allow("User:alice", ResourceType.TOPIC, mine, AclOperation.CREATE))
    alice.create_topics([NewTopic(mine, 1, 1)], operation_timeout=10)[mine].result(timeout=10)
    with pytest.raises(KafkaException) as info:
        alice.delete_topics([mine], operation_timeout=10)[mine].result(timeout=10)
    assert info.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Metadata for all topics shows only what alice may DESCRIBE (CREATE does not imply it).
    _grant(acl_server, _allow("User:alice", ResourceType.TOPIC, mine, AclOperation.DELETE))
    listed = alice.list_topics(timeout=10).topics
    assert mine in listed and hidden not in listed
    alice.delete_topics([mine], operation_timeout=10)[mine].result(timeout=10)


def test_configs_and_partitions_need_their_acls(acl_server: SecureServer) -> None:
    topic = _name()
    _create_topic(acl_server, topic)
    alice = _admin(acl_server, "alice")

    def alter() -> None:
        entry = ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
        alice.incremental_alter_configs([resource], request_timeout=10)[resource].result(timeout=10)

    def describe() -> dict[str, Any]:
        resource = ConfigResource(ResourceType.TOPIC, topic)
        found: dict[str, Any] = alice.describe_configs([resource], request_timeout=10)[resource].result(timeout=10)
        return found

    for attempt in (alter, describe, lambda: alice.create_partitions([NewPartitions(topic, 2)])[topic].result(10)):
        with pytest.raises(KafkaException) as info:
            attempt()
        assert info.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    _grant(acl_server, _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.ALTER_CONFIGS),
           _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.ALTER))  # fmt: skip
    alter()
    assert describe()["retention.ms"].value == "1"  # ALTER_CONFIGS implies DESCRIBE_CONFIGS
    alice.create_partitions([NewPartitions(topic, 2)])[topic].result(10)


def test_consumer_group_needs_read_on_the_group(acl_server: SecureServer) -> None:
    topic, group = _name(), _name("group")
    _create_topic(acl_server, topic)
    _grant(acl_server, _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.READ))
    consumer = Consumer({**_config(acl_server, "alice"), "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 10
        error = None
        while error is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            error = msg.error() if msg is not None else None
        assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    finally:
        consumer.close()


@pytest.mark.slow  # two server starts
def test_acls_survive_a_restart(tmp_path: Path) -> None:
    server = _start(tmp_path)
    try:
        topic = _name()
        _create_topic(server, topic)
        binding = _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.WRITE)
        _grant(server, binding)
        server.restart()  # kill -9: the file was fsynced and renamed before CreateAcls answered
        _admins.pop((server.bootstrap, "admin"), None)  # its connection went with the old process
        assert _admin(server).describe_acls(ALL_ACLS, request_timeout=10).result(timeout=10) == [binding]
        assert _produce(server, "alice", topic) is None
        stored = json.loads((tmp_path / "data" / "acls.json").read_text())
        assert stored["acls"][0]["principal"] == "User:alice"
    finally:
        server.kill()


def test_acl_apis_without_authentication_are_security_disabled(server: ServerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    binding = _allow("User:alice", ResourceType.TOPIC, "t", AclOperation.READ)
    with pytest.raises(KafkaException) as info:
        admin.create_acls([binding], request_timeout=10)[binding].result(timeout=10)
    assert info.value.args[0].code() == KafkaError.SECURITY_DISABLED
    # And everything else works as it always did: no authorization without users.
    admin.create_topics([NewTopic("open", 1, 1)], operation_timeout=10)["open"].result(timeout=10)
    assert _produce_plain(server, "open") is None


def _produce_plain(server: ServerProcess, topic: str) -> KafkaError | None:
    producer = Producer({"bootstrap.servers": server.bootstrap, "message.timeout.ms": 5000})
    outcome: list[KafkaError | None] = []
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(10)
    return outcome[0]


# the authorizer's decisions, without a server -----------------------------------------
def _binding(name: str, op: Operation, permission: Permission = Permission.ALLOW, *, principal: str = "User:alice",
             pattern: PatternType = PatternType.LITERAL, resource: Resource = Resource.TOPIC,
             host: str = "*") -> Binding:  # fmt: skip
    return Binding(resource, name, pattern, principal, host, op, permission)


def test_authorizer_semantics() -> None:
    auth = Authorizer(None, super_users=["User:root"])
    may = auth.authorize
    assert not may("User:alice", "1.2.3.4", Operation.READ, Resource.TOPIC, "t")  # no ACL: deny
    assert may("User:root", "1.2.3.4", Operation.DELETE, Resource.CLUSTER, "kafka-cluster")
    auth.create([_binding("t", Operation.READ), _binding("p-", Operation.WRITE, pattern=PatternType.PREFIXED),
                 _binding("*", Operation.ALTER_CONFIGS, principal="User:*"),
                 _binding("h", Operation.ALL, host="10.0.0.1")])  # fmt: skip
    assert may("User:alice", "h", Operation.READ, Resource.TOPIC, "t")
    assert may("User:alice", "h", Operation.DESCRIBE, Resource.TOPIC, "t")  # READ implies DESCRIBE
    assert not may("User:alice", "h", Operation.WRITE, Resource.TOPIC, "t")
    assert not may("User:bob", "h", Operation.READ, Resource.TOPIC, "t")
    assert may("User:alice", "h", Operation.WRITE, Resource.TOPIC, "p-1")
    assert not may("User:alice", "h", Operation.WRITE, Resource.TOPIC, "p")
    assert may("User:bob", "h", Operation.DESCRIBE_CONFIGS, Resource.TOPIC, "anything")  # wildcards
    assert not may("User:bob", "h", Operation.READ, Resource.GROUP, "t")  # other resource type
    assert may("User:alice", "10.0.0.1", Operation.READ, Resource.TOPIC, "h")
    assert not may("User:alice", "10.0.0.2", Operation.READ, Resource.TOPIC, "h")
    # A DENY of READ denies READ, but does not deny what READ implies.
    auth.create([_binding("t", Operation.READ, Permission.DENY, principal="User:*")])
    assert not may("User:alice", "h", Operation.READ, Resource.TOPIC, "t")
    assert may("User:alice", "h", Operation.DESCRIBE, Resource.TOPIC, "t")
    assert auth.authorize_any("User:alice", "h", Operation.WRITE, Resource.TOPIC)
    assert not auth.authorize_any("User:bob", "h", Operation.WRITE, Resource.TOPIC)


def test_allow_everyone_if_no_acl_found() -> None:
    auth = Authorizer(None, allow_everyone_if_no_acl_found=True)
    assert auth.authorize("User:bob", "h", Operation.WRITE, Resource.TOPIC, "t")
    auth.create([_binding("t", Operation.READ)])  # now t has an ACL: only it counts
    assert not auth.authorize("User:bob", "h", Operation.WRITE, Resource.TOPIC, "t")
    assert auth.authorize("User:bob", "h", Operation.WRITE, Resource.TOPIC, "u")


@pytest.mark.parametrize(
    "fields",
    [(Resource.ANY, "t", PatternType.LITERAL), (Resource.TOPIC, "t", PatternType.MATCH),
     (Resource.CLUSTER, "c", PatternType.LITERAL), (Resource.TOPIC, "", PatternType.LITERAL)],
)  # fmt: skip
def test_invalid_bindings_are_refused(fields: tuple[Resource, str, PatternType]) -> None:
    with pytest.raises(InvalidAclError):
        Binding.of(*fields, "User:alice", "*", Operation.READ, Permission.ALLOW)
    with pytest.raises(InvalidAclError):
        Binding.of(Resource.TOPIC, "t", PatternType.LITERAL, "alice", "*", Operation.READ, Permission.ALLOW)
    with pytest.raises(InvalidAclError):
        Binding.of(Resource.TOPIC, "t", PatternType.LITERAL, "User:a", "*", Operation.ANY, Permission.ALLOW)
    with pytest.raises(InvalidAclError):
        AclFilter.of(99, None, 1, None, None, 1, 1)


def test_acl_file_is_written_atomically_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    auth = Authorizer(tmp_path)
    auth.create([_binding("t", Operation.READ)])
    assert not list(tmp_path.glob("*.tmp"))
    assert Authorizer(tmp_path).describe(AclFilter.of(1, None, 1, None, None, 1, 1)) == [_binding("t", Operation.READ)]
    assert auth.delete([AclFilter.of(2, "t", 3, None, None, 1, 1)]) == [[_binding("t", Operation.READ)]]
    assert Authorizer(tmp_path).describe(AclFilter.of(1, None, 1, None, None, 1, 1)) == []
    (tmp_path / "acls.json").write_text('{"acls": [{"resource_type": "TOPIC"')
    with pytest.raises(ConfigError, match=r"acls\.json"):
        Authorizer(tmp_path)


def test_authorized_operations_and_auto_creation_follow_the_acls(acl_server: SecureServer) -> None:
    from confluent_kafka import TopicCollection

    topic = _name("ops")
    _create_topic(acl_server, topic)
    _grant(acl_server, _allow("User:bob", ResourceType.TOPIC, topic, AclOperation.DESCRIBE))
    bob = _admin(acl_server, "bob")
    (described,) = bob.describe_topics(TopicCollection([topic]), include_authorized_operations=True).values()
    assert {op.name for op in described.result(10).authorized_operations} == {"DESCRIBE"}
    cluster = bob.describe_cluster(include_authorized_operations=True).result(10)
    assert not cluster.authorized_operations  # bob has nothing on the cluster
    admin_ops = _admin(acl_server).describe_cluster(include_authorized_operations=True).result(10)
    assert {"ALTER", "CREATE", "DESCRIBE"} <= {op.name for op in admin_ops.authorized_operations}
    # Auto-creation needs CREATE on the cluster or the topic, as in Kafka.
    fresh = _name("auto")
    _grant(acl_server, _allow("User:bob", ResourceType.TOPIC, fresh, AclOperation.WRITE))
    denied = _produce(acl_server, "bob", fresh, **{"topic.metadata.propagation.max.ms": 1000})
    assert denied is not None
    _grant(acl_server, _allow("User:bob", ResourceType.TOPIC, fresh, AclOperation.CREATE))
    assert _produce(acl_server, "bob", fresh) is None
