"""librdkafka's own multi-broker mock cluster, through ctypes.

The confluent-kafka wheel bundles librdkafka, which contains a Kafka cluster simulator
(``rdkafka_mock.h``): real listening sockets that speak the Kafka protocol for produce,
fetch, list offsets, metadata, consumer groups and offset commits, with broker outages
and leader changes on demand. Nobody here wrote it, which is what makes it a good test
oracle for ``kafka://``.

>>> with MockCluster(brokers=3) as cluster:                        # doctest: +SKIP
...     cluster.create_topic("orders", partitions=6, replication=3)
...     lab = streamlab.connect("kafka://" + cluster.bootstrap)

The mock has no admin APIs (CreateTopics, DeleteTopics, DescribeConfigs, ListGroups,
DescribeGroups are missing) and its ListOffsets ignores timestamps. A :class:`KafkaBackend`
connected to a cluster created here in the same process finds it with :func:`find` and
creates and deletes topics through the C API instead (:class:`MockTopicAdmin`); offsets
for a time are searched for by reading records.

The C API is marked experimental by librdkafka; only the handful of functions below are
used, with their signatures from ``rdkafka_mock.h``.
"""

from __future__ import annotations

import ctypes
import threading
from functools import cache
from pathlib import Path
from typing import Any

from streamlab.config import topic_config
from streamlab.errors import ConfigError, StreamlabError, TopicExistsError, UnsupportedOperationError

_c = ctypes  # short alias for the signature table
_live: dict[str, MockCluster] = {}
_live_lock = threading.Lock()


class MockClusterError(StreamlabError):
    """librdkafka's mock cluster refused an operation (the message has librdkafka's reason)."""


def _library_path() -> Path:
    """The librdkafka shared library inside the installed confluent-kafka wheel."""
    import confluent_kafka

    package = Path(confluent_kafka.__file__).parent
    candidates = [
        *sorted((package.parent / "confluent_kafka.libs").glob("librdkafka*.so*")),
        *sorted(package.glob("**/librdkafka*.so*")),
        *sorted((package.parent / "confluent_kafka.libs").glob("librdkafka*.dylib")),
        *sorted(package.glob("**/librdkafka*.dylib")),
    ]
    if not candidates:
        raise MockClusterError(
            f"no bundled librdkafka next to {package}: the mock cluster needs the confluent-kafka wheel "
            "(pip install confluent-kafka), not a build against a system librdkafka"
        )
    return candidates[0]


@cache
def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(_library_path()))
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "rd_kafka_conf_new": (_c.c_void_p, []),
        "rd_kafka_conf_set": (_c.c_int, [_c.c_void_p, _c.c_char_p, _c.c_char_p, _c.c_char_p, _c.c_size_t]),
        "rd_kafka_new": (_c.c_void_p, [_c.c_int, _c.c_void_p, _c.c_char_p, _c.c_size_t]),
        "rd_kafka_destroy": (None, [_c.c_void_p]),
        "rd_kafka_err2str": (_c.c_char_p, [_c.c_int]),
        "rd_kafka_mock_cluster_new": (_c.c_void_p, [_c.c_void_p, _c.c_int]),
        "rd_kafka_mock_cluster_destroy": (None, [_c.c_void_p]),
        "rd_kafka_mock_cluster_bootstraps": (_c.c_char_p, [_c.c_void_p]),
        "rd_kafka_mock_topic_create": (_c.c_int, [_c.c_void_p, _c.c_char_p, _c.c_int, _c.c_int]),
        "rd_kafka_mock_topic_delete": (_c.c_int, [_c.c_void_p, _c.c_char_p]),
        "rd_kafka_mock_broker_set_down": (_c.c_int, [_c.c_void_p, _c.c_int32]),
        "rd_kafka_mock_broker_set_up": (_c.c_int, [_c.c_void_p, _c.c_int32]),
        "rd_kafka_mock_partition_set_leader": (_c.c_int, [_c.c_void_p, _c.c_char_p, _c.c_int32, _c.c_int32]),
        "rd_kafka_mock_group_initial_rebalance_delay_ms": (None, [_c.c_void_p, _c.c_int32]),
        "rd_kafka_mock_coordinator_set": (_c.c_int, [_c.c_void_p, _c.c_char_p, _c.c_char_p, _c.c_int32]),
        "rd_kafka_mock_sharegroup_set_record_lock_duration": (None, [_c.c_void_p, _c.c_int]),
        "rd_kafka_mock_set_group_consumer_session_timeout_ms": (None, [_c.c_void_p, _c.c_int]),
        "rd_kafka_mock_set_group_consumer_heartbeat_interval_ms": (None, [_c.c_void_p, _c.c_int]),
        "rd_kafka_mock_sharegroup_set_max_delivery_attempts": (None, [_c.c_void_p, _c.c_int]),
        "rd_kafka_mock_sharegroup_set_auto_offset_reset": (None, [_c.c_void_p, _c.c_int]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def find(bootstrap: str) -> MockCluster | None:
    """The live in-process mock cluster whose brokers include one of ``bootstrap``'s."""
    wanted = {address.strip() for address in bootstrap.split(",") if address.strip()}
    with _live_lock:
        for cluster in _live.values():
            if wanted & set(cluster.bootstrap.split(",")):
                return cluster
    return None


class MockCluster:
    """A librdkafka mock cluster of ``brokers`` brokers (ids 1..brokers) on 127.0.0.1.

    Consumer groups are balanced as soon as a member joins (``initial_rebalance_delay_ms``
    is 0 rather than Kafka's 3000). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, brokers: int = 3, *, initial_rebalance_delay_ms: int = 0) -> None:
        if isinstance(brokers, bool) or not isinstance(brokers, int) or not 1 <= brokers <= 64:
            raise ConfigError(f"brokers must be an integer from 1 to 64, got {brokers!r}")
        lib = _lib()
        self.brokers = brokers
        self._lock = threading.Lock()
        conf = lib.rd_kafka_conf_new()
        errstr = ctypes.create_string_buffer(512)
        # The owning handle never connects anywhere; keep it quiet (no "no bootstrap.servers" warning).
        lib.rd_kafka_conf_set(conf, b"log_level", b"0", errstr, len(errstr))
        self._rk = lib.rd_kafka_new(0, conf, errstr, len(errstr))  # 0: RD_KAFKA_PRODUCER
        if not self._rk:
            raise MockClusterError(f"rd_kafka_new failed: {errstr.value.decode(errors='replace')}")
        self._cluster = lib.rd_kafka_mock_cluster_new(self._rk, brokers)
        if not self._cluster:
            lib.rd_kafka_destroy(self._rk)
            raise MockClusterError("rd_kafka_mock_cluster_new failed")
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, initial_rebalance_delay_ms)
        self.bootstrap: str = lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()
        self.topic_configs: dict[str, dict[str, Any]] = {}  # what create_topic was told, for KafkaBackend
        with _live_lock:
            _live[self.bootstrap] = self

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.bootstrap
        return f"<streamlab.kafka.MockCluster brokers={self.brokers} {state}>"

    @property
    def closed(self) -> bool:
        return self._cluster is None

    def _check(self, err: int, what: str) -> None:
        if err:
            reason = _lib().rd_kafka_err2str(err).decode(errors="replace")
            raise MockClusterError(f"{what}: {reason} (librdkafka error {err})")

    def _handle(self) -> int:
        if self._cluster is None:
            raise MockClusterError("this mock cluster is closed")
        return int(self._cluster)

    def _set(self, *settings: tuple[Any, int | None]) -> None:
        """Call each mock setter (cluster, value) whose value is given (None: left as it is)."""
        with self._lock:
            cluster = self._handle()
            for setter, value in settings:
                if value is not None:
                    setter(cluster, value)

    # topics -----------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1, replication: int = 1) -> None:
        """Create ``name`` with the leader of partition ``p`` on broker ``p % brokers + 1``.

        (librdkafka picks leaders at random, which can leave a broker leading nothing.)
        """
        if not 1 <= replication <= self.brokers:
            raise ConfigError(f"replication must be from 1 to {self.brokers} (the brokers), got {replication}")
        with self._lock:
            err = _lib().rd_kafka_mock_topic_create(self._handle(), name.encode(), partitions, replication)
        self._check(err, f"creating topic {name!r}")
        for partition in range(partitions):
            self.set_leader(name, partition, partition % self.brokers + 1)

    def delete_topic(self, name: str) -> None:
        with self._lock:
            err = _lib().rd_kafka_mock_topic_delete(self._handle(), name.encode())
        self._check(err, f"deleting topic {name!r}")
        self.topic_configs.pop(name, None)

    def set_leader(self, topic: str, partition: int, broker_id: int) -> None:
        """Move the leadership of one partition (-1 leaves it without a leader)."""
        with self._lock:
            err = _lib().rd_kafka_mock_partition_set_leader(self._handle(), topic.encode(), partition, broker_id)
        self._check(err, f"moving the leader of {topic}[{partition}] to broker {broker_id}")

    def set_coordinator(self, group: str, broker_id: int) -> None:
        """Make ``broker_id`` the coordinator of consumer group ``group`` (else a hash picks it)."""
        with self._lock:
            err = _lib().rd_kafka_mock_coordinator_set(self._handle(), b"group", group.encode(), broker_id)
        self._check(err, f"making broker {broker_id} the coordinator of group {group!r}")

    # share groups -------------------------------------------------------------------------
    def share_group_settings(
        self, *, lock_ms: int | None = None, delivery_count_limit: int | None = None,
        auto_offset_reset: str | None = None,
    ) -> None:  # fmt: skip
        """Share-group settings of the mock, for all its share groups (it has no group configs)."""
        lib = _lib()
        self._set(
            (lib.rd_kafka_mock_sharegroup_set_record_lock_duration, lock_ms),
            (lib.rd_kafka_mock_sharegroup_set_max_delivery_attempts, delivery_count_limit),
            (lib.rd_kafka_mock_sharegroup_set_auto_offset_reset,
             None if auto_offset_reset is None else int(auto_offset_reset == "earliest")),
        )  # fmt: skip

    # consumer groups of the KIP-848 protocol ----------------------------------------------
    def consumer_group_settings(
        self, *, session_timeout_ms: int | None = None, heartbeat_interval_ms: int | None = None
    ) -> None:
        """``group.consumer.session.timeout.ms`` and ``group.consumer.heartbeat.interval.ms`` of
        the mock, for all its consumer groups of the consumer protocol (KIP-848)."""
        lib = _lib()
        self._set(
            (lib.rd_kafka_mock_set_group_consumer_session_timeout_ms, session_timeout_ms),
            (lib.rd_kafka_mock_set_group_consumer_heartbeat_interval_ms, heartbeat_interval_ms),
        )

    # brokers ----------------------------------------------------------------------------
    def broker_down(self, broker_id: int) -> None:
        """Disconnect broker ``broker_id`` and refuse new connections (leaders do not move)."""
        with self._lock:
            err = _lib().rd_kafka_mock_broker_set_down(self._handle(), broker_id)
        self._check(err, f"taking broker {broker_id} down")

    def broker_up(self, broker_id: int) -> None:
        with self._lock:
            err = _lib().rd_kafka_mock_broker_set_up(self._handle(), broker_id)
        self._check(err, f"bringing broker {broker_id} up")

    # lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every broker. Safe to call twice."""
        with self._lock:
            if self._cluster is None:
                return
            with _live_lock:
                _live.pop(self.bootstrap, None)
            lib = _lib()
            lib.rd_kafka_mock_cluster_destroy(self._cluster)
            lib.rd_kafka_destroy(self._rk)
            self._cluster = None

    def __enter__(self) -> MockCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MockTopicAdmin:
    """Topics of an in-process librdkafka mock cluster, which has no admin APIs."""

    def __init__(self, cluster: MockCluster) -> None:
        self._cluster = cluster

    def create(self, name: str, partitions: int, config: dict[str, Any], replication: int | None) -> None:
        full = topic_config(config)  # the embedded broker's rules for the configs it knows
        try:
            self._cluster.create_topic(name, partitions, replication or min(3, self._cluster.brokers))
        except MockClusterError as exc:
            if "already exists" in str(exc):
                raise TopicExistsError(f"topic {name!r} already exists", topic=name) from exc
            raise
        self._cluster.topic_configs[name] = full

    def delete(self, name: str) -> None:
        self._cluster.delete_topic(name)

    def grow(self, name: str, total: int) -> None:
        raise UnsupportedOperationError("librdkafka's mock cluster cannot add partitions to a topic", topic=name)

    def configs(self, names: list[str]) -> dict[str, dict[str, Any]]:
        return {n: dict(self._cluster.topic_configs.get(n) or topic_config()) for n in names}

    def auto_creation(self) -> tuple[bool, int]:
        return True, 1  # Kafka's defaults: the mock has no broker configs to ask

    def alter(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        merged = topic_config({**(self._cluster.topic_configs.get(name) or {}), **changes})
        self._cluster.topic_configs[name] = merged
        return dict(merged)
