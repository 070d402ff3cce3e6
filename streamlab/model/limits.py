"""Size rules every path that stores or sends records shares."""

from __future__ import annotations

from streamlab.errors import RecordTooLargeError

# Per-record overhead Kafka counts on top of key and value bytes (record batch v2 framing).
RECORD_OVERHEAD = 70


def record_size(key: bytes | None, value: bytes | None) -> int:
    """The bytes one record counts for against ``max.message.bytes``."""
    return RECORD_OVERHEAD + len(key or b"") + len(value or b"")


def check_record_size(
    size: int, limit: int, *, topic: str, what: str = "a record", partition: int | None = None
) -> None:
    """:class:`RecordTooLargeError` when a record of ``size`` bytes (see :func:`record_size`)
    is over the topic's ``max.message.bytes`` ``limit``."""
    if size > limit:
        raise RecordTooLargeError(
            f"{what} of {size} bytes exceeds max.message.bytes={limit} of topic {topic!r}; "
            "split the value or raise the topic's max.message.bytes",
            topic=topic, partition=partition,
        )  # fmt: skip
