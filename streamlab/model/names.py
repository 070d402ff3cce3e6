"""Kafka's naming rules for topics and groups."""

from __future__ import annotations

import re
import warnings

from streamlab.errors import CatalogWarning, ConfigError, InvalidPartitionsError, InvalidTopicError, StreamlabError

_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
MAX_TOPIC_LENGTH = 249
MAX_PARTITIONS = 10_000


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


def catalog_topic_ok(name: object, partitions: object, *, catalog: object) -> bool:
    """Whether a topic row read back from ``catalog`` may be opened: its name follows the
    same rules as a name a user gives (a row named ``../../x`` would otherwise put
    directories outside the data directory) and its partition count is one streamlab
    creates. A bad row is skipped with a :class:`~streamlab.errors.CatalogWarning` naming it."""
    try:
        validate_topic_name(name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidPartitionsError(
                f"partitions must be an integer from 1 to {MAX_PARTITIONS}, got {partitions!r}"
            )
    except StreamlabError as exc:
        warnings.warn(
            CatalogWarning(f"{catalog}: skipped the topic row {name!r} ({partitions!r} partitions): {exc}"),
            stacklevel=3,
        )
        return False
    return True


def validate_group_id(group: object, *, what: str = "group", empty_ok: bool = False) -> str:
    """A consumer group id (or a client id, ``empty_ok``): any non-empty str Kafka can carry (UTF-8)."""
    if not isinstance(group, str) or not (group or empty_ok):
        raise ConfigError(f"{what} must be a non-empty str, got {group!r}")
    try:
        group.encode()
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{what} {group!r} is not valid Unicode ({exc.reason} at index {exc.start})") from exc
    return group
