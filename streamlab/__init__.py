"""streamlab: a notebook-first streaming workbench modelled on Apache Kafka.

>>> import streamlab
>>> lab = streamlab.connect("lab-data")     # embedded broker, no server to start
"""

from __future__ import annotations

from pathlib import Path

from streamlab.client.consumer import Consumer
from streamlab.client.lab import Lab
from streamlab.client.producer import Producer
from streamlab.errors import StreamlabError
from streamlab.model.types import OffsetAndMetadata, Record, RecordMetadata, TopicPartition

__version__ = "0.1.0"
DEFAULT_DIRECTORY = "streamlab-data"


def connect(target: str | Path = DEFAULT_DIRECTORY) -> Lab:
    """Open a broker: a directory path gives the embedded broker (created if missing);
    ``"kafka://host:port[,host:port...]"`` a :class:`streamlab.kafka.lab.KafkaLab` with the
    same API on a Kafka cluster (``streamlab serve``, Apache Kafka, Redpanda)."""
    if isinstance(target, str) and target.startswith("kafka://"):
        try:
            from streamlab.kafka.lab import KafkaLab  # imports confluent-kafka only when asked for
        except ModuleNotFoundError as exc:
            if exc.name != "confluent_kafka":
                raise
            raise ModuleNotFoundError(
                "kafka:// needs confluent-kafka: pip install 'streamlab[kafka]' (or pip install confluent-kafka)",
                name=exc.name,
            ) from exc

        return KafkaLab(target)  # type: ignore[return-value]  # Lab's API; see streamlab.kafka
    return Lab(target)


__all__ = [
    "Consumer",
    "Lab",
    "OffsetAndMetadata",
    "Producer",
    "Record",
    "RecordMetadata",
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
