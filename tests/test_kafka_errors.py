"""kafka:// turns every error code a broker answers into the streamlab error of that code."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamlab.errors import (
    KAFKA_ERROR_CODES,
    FencedMemberEpochError,
    StaleMemberEpochError,
    StorageError,
    StreamlabError,
    UnknownPartitionError,
)
from streamlab.kafka import translate


@pytest.mark.parametrize("code", sorted({c for c in KAFKA_ERROR_CODES.values() if c > 0}))
def test_every_code_of_the_exception_tree_comes_back_as_an_error_of_that_code(code: int) -> None:
    error = translate(KafkaException(KafkaError(code)), context="doing something")
    assert error.kafka_code == code, type(error)
    assert str(error).startswith("doing something: ")


def test_consumer_group_protocol_and_storage_codes_are_mapped() -> None:
    assert isinstance(translate(KafkaError(110)), FencedMemberEpochError)
    assert isinstance(translate(KafkaError(113)), StaleMemberEpochError)
    assert isinstance(translate(KafkaError(56)), StorageError)
    assert isinstance(translate(KafkaError(3), topic="t", partition=9), UnknownPartitionError)
    unknown = translate(KafkaError(999))
    assert type(unknown) is StreamlabError
