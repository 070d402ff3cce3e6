"""What consumers of every backend do the same way."""

from __future__ import annotations

import warnings

from streamlab.errors import OffsetResetWarning
from streamlab.model.types import TopicPartition


def warn_offset_reset(tp: TopicPartition, offset: int, end: int, reset: str, new: int) -> None:
    """Say that ``offset`` (committed, or sought) lies beyond ``tp``'s end and reading
    restarts at ``new``: Kafka's OFFSET_OUT_OF_RANGE, which its consumers log, never a silent jump."""
    warnings.warn(
        OffsetResetWarning(
            f"offset {offset} of {tp} is beyond its end ({end}): OFFSET_OUT_OF_RANGE, so reading starts "
            f"at {new} (auto_offset_reset={reset!r})"
        ),
        stacklevel=4,
    )
