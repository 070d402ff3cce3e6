"""Kafka's naming rules for topics and groups."""

from __future__ import annotations

import re

from streamlab.errors import InvalidTopicError

_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
MAX_TOPIC_LENGTH = 249


def validate_topic_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidTopicError(f"topic name must be a str, got {type(name).__name__}")
    if name in ("", ".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is not allowed", topic=name)
    if len(name) > MAX_TOPIC_LENGTH:
        raise InvalidTopicError(
            f"topic name is {len(name)} characters; Kafka allows at most {MAX_TOPIC_LENGTH}", topic=name
        )
    if not _LEGAL.fullmatch(name):
        bad = sorted({c for c in name if not _LEGAL.fullmatch(c)})
        raise InvalidTopicError(
            f"topic name {name!r} has illegal characters {bad}; use only letters, digits, '.', '_' and '-'",
            topic=name,
        )
    return name
