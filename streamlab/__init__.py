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
    """Open a broker: a directory path gives the embedded broker (created if missing)."""
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
