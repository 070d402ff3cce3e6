"""streamlab: a notebook-first streaming workbench modelled on Apache Kafka.

>>> import streamlab
>>> lab = streamlab.connect("lab-data")     # embedded broker, no server to start
"""

from __future__ import annotations

from pathlib import Path

from streamlab.api import Consumer, Producer, ShareConsumer
from streamlab.errors import StreamlabError
from streamlab.front.lab import Lab
from streamlab.model.clock import Clock, ManualClock
from streamlab.model.types import OffsetAndMetadata, Record, RecordMetadata, TopicPartition

__version__ = "0.1.0"
DEFAULT_DIRECTORY = "streamlab-data"


def connect(
    target: str | Path = DEFAULT_DIRECTORY,
    *,
    auto_create_topics: bool | None = None,
    num_partitions: int | None = None,
    schema_registry: str | None = None,
    clock: Clock | None = None,
) -> Lab:
    """Open a broker: a directory path gives the embedded broker (created if missing);
    ``"kafka://host:port[,host:port...]"`` a Kafka cluster (``streamlab serve``, Apache
    Kafka, Redpanda). Either way the same :class:`Lab`, over a backend of that kind.

    ``auto_create_topics`` and ``num_partitions`` are the embedded broker's
    ``auto.create.topics.enable`` (default True, as in Kafka: a producer's first send to an
    unknown topic creates it) and ``num.partitions`` (default 1). A Kafka cluster has its
    own (``streamlab serve --no-auto-create-topics``): giving them with kafka:// is an error.

    ``schema_registry`` (kafka:// only): the URL of a Schema Registry (Confluent's, Redpanda's,
    ``streamlab serve --schema-registry-port``) that ``lab.schemas`` uses; an embedded lab uses
    its directory's own registry.

    ``clock`` (embedded only): what the broker keeps group sessions, timeouts and
    share-group locks by, e.g. a :class:`~streamlab.model.clock.ManualClock` that moves only
    when told (default: the system's). Within a process a directory has one broker: the
    first connect's clock holds."""
    settings = None
    if auto_create_topics is not None or num_partitions is not None:
        from streamlab.config import BrokerSettings
        from streamlab.errors import ConfigError

        if isinstance(target, str) and target.startswith("kafka://"):
            raise ConfigError(
                "auto_create_topics and num_partitions are the cluster's settings: set them on the server "
                "(streamlab serve --no-auto-create-topics / --num-partitions N; auto.create.topics.enable in Kafka)"
            )
        settings = BrokerSettings(
            auto_create_topics_enable=True if auto_create_topics is None else auto_create_topics,
            num_partitions=1 if num_partitions is None else num_partitions,
        )
    if isinstance(target, str) and target.startswith("kafka://"):
        if clock is not None:
            from streamlab.errors import ConfigError

            raise ConfigError("clock= is for embedded labs: a Kafka cluster keeps its own time")
        try:
            from streamlab.kafka.backend import KafkaBackend  # imports confluent-kafka only when asked for
        except ModuleNotFoundError as exc:
            if exc.name != "confluent_kafka":
                raise
            raise ModuleNotFoundError(
                "kafka:// needs confluent-kafka: pip install 'streamlab[kafka]' (or pip install confluent-kafka)",
                name=exc.name,
            ) from exc

        return Lab(KafkaBackend(target, schema_registry=schema_registry))
    from streamlab.client.backend import EmbeddedBackend

    if schema_registry is not None:
        from streamlab.errors import ConfigError

        raise ConfigError("schema_registry= is for kafka:// labs; an embedded lab's registry is in its directory")
    return Lab(EmbeddedBackend(target, settings=settings, clock=clock))


__all__ = [
    "Consumer",
    "Lab",
    "ManualClock",
    "OffsetAndMetadata",
    "Producer",
    "Record",
    "RecordMetadata",
    "ShareConsumer",
    "StreamlabError",
    "TopicPartition",
    "__version__",
    "connect",
]

from types import ModuleType  # noqa: E402

_LAZY = {"widgets": "streamlab.notebook.widgets", "plot": "streamlab.notebook.plot"}


def __getattr__(name: str) -> ModuleType:
    """``streamlab.widgets`` and ``streamlab.plot``, imported on first use (they need the
    ``notebook`` extra: ipywidgets, matplotlib)."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'streamlab' has no attribute {name!r}")
