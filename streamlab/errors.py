"""One exception tree for all of streamlab.

Every error is a :class:`StreamlabError`. Subclasses carry structured fields (``topic``,
``partition``, ``offset``) and a ``retriable`` flag, and each maps to the Kafka protocol
error code a Kafka client would see for the same condition (:data:`KAFKA_ERROR_CODES`), so
the wire server and the embedded API agree on what went wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar


class StreamlabError(Exception):
    """Root of every streamlab error."""

    retriable: ClassVar[bool] = False
    kafka_code: ClassVar[int] = -1  # UNKNOWN_SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class RetentionWarning(UserWarning):
    """Records produced with timestamps already past the topic's ``retention.ms``: they are
    stored, but retention deletes them (as Kafka would) once their segment is sealed."""


class StreamlabWarning(UserWarning):
    """Root of streamlab's warnings: something was handled, but a person should know."""


class OffsetResetWarning(StreamlabWarning):
    """A committed offset was beyond the partition's end (Kafka's OFFSET_OUT_OF_RANGE): the
    consumer started from ``auto_offset_reset`` instead, as Kafka's consumers do."""


class CatalogWarning(StreamlabWarning):
    """A catalog entry was not valid (a topic name breaking Kafka's rules) and was skipped."""


class UnknownGroupWarning(StreamlabWarning):
    """A group was asked about that has no members and no committed offsets (a typo?):
    the answer is empty, and the warning names the groups there are."""


class RecoveryWarning(StreamlabWarning):
    """Opening a data directory found something to repair or report: a torn tail cut from
    an active segment (a write a crash cut short, never acknowledged), damaged bytes, or a
    missing segment file. The message names the partition, the file and the offsets."""


class ConfigError(StreamlabError, ValueError):
    """A configuration key or value is not valid."""

    kafka_code = 40  # INVALID_CONFIG


class InvalidTopicError(StreamlabError, ValueError):
    """A topic name breaks Kafka's rules ([a-zA-Z0-9._-], 1 to 249 characters)."""

    kafka_code = 17  # INVALID_TOPIC_EXCEPTION


class TopicExistsError(StreamlabError):
    kafka_code = 36  # TOPIC_ALREADY_EXISTS


class UnknownTopicError(StreamlabError, KeyError):
    kafka_code = 3  # UNKNOWN_TOPIC_OR_PARTITION

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownPartitionError(UnknownTopicError):
    """The topic exists but has no such partition."""


class InvalidPartitionsError(StreamlabError, ValueError):
    kafka_code = 37  # INVALID_PARTITIONS


class RecordTooLargeError(StreamlabError, ValueError):
    kafka_code = 10  # MESSAGE_TOO_LARGE


class SerializationError(StreamlabError, TypeError):
    """A key, value or header cannot be turned into bytes."""

    kafka_code = 87  # INVALID_RECORD


class InvalidTimestampError(StreamlabError, ValueError):
    """A record timestamp outside what streamlab stores and replays: milliseconds from
    1970-01-01 to 9999-12-31 (UTC), the range of Python's datetime."""

    kafka_code = 32  # INVALID_TIMESTAMP


class QueryError(StreamlabError, ValueError):
    """SQL given to ``lab.sql`` is empty or DuckDB refused it (syntax, unknown table or column)."""

    kafka_code = 42  # INVALID_REQUEST


class CorruptRecordError(StreamlabError):
    kafka_code = 2  # CORRUPT_MESSAGE


class CorruptSegmentError(CorruptRecordError):
    """Stored data failed its checksum or cannot be read: the file and the offsets it holds
    are named, the damaged records are never served, and everything before them stays
    readable. ``streamlab check`` lists every such file."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message, topic=topic, partition=partition, offset=offset)
        self.path = path


class StorageError(StreamlabError, OSError):
    """Writing to the data directory failed (disk full, I/O error). Nothing of the failed
    write was kept; once the cause is gone (space freed) writes resume. Kafka's
    KAFKA_STORAGE_ERROR on the wire."""

    retriable = True
    kafka_code = 56  # KAFKA_STORAGE_ERROR


class OffsetOutOfRangeError(StreamlabError, ValueError):
    """A position is before the log start or after the high watermark."""

    kafka_code = 1  # OFFSET_OUT_OF_RANGE


class InvalidOffsetError(StreamlabError, ValueError):
    """An offset that is not a non-negative integer."""

    kafka_code = 1


class NoGroupError(StreamlabError):
    """Committing needs a consumer group: pass ``group=`` when creating the consumer."""


class ClosedError(StreamlabError):
    """The producer, consumer or broker was closed."""


class UnsupportedOperationError(StreamlabError, NotImplementedError):
    """The backend cannot do this: a Kafka cluster cannot give what only the embedded
    broker's data directory holds, or lacks an API (librdkafka's mock cluster has no admin
    APIs). The message says where to do it instead."""

    kafka_code = 35  # UNSUPPORTED_VERSION


class BrokerLockedError(StreamlabError):
    """Another process has this data directory open."""


class OperationTimeoutError(StreamlabError, TimeoutError):
    retriable = True
    kafka_code = 7  # REQUEST_TIMED_OUT


class JobError(StreamlabError):
    """A streaming job's process or its Python environment could not be started or set up
    (:meth:`~streamlab.front.lab.Lab.start_job`, ``streamlab jobs setup``)."""


# Group coordination errors (used by consumer groups and the wire server).
class GroupError(StreamlabError):
    """Base for consumer-group errors."""


class UnknownMemberError(GroupError):
    kafka_code = 25  # UNKNOWN_MEMBER_ID


class IllegalGenerationError(GroupError):
    kafka_code = 22  # ILLEGAL_GENERATION


class RebalanceInProgressError(GroupError):
    retriable = True
    kafka_code = 27  # REBALANCE_IN_PROGRESS


class InconsistentProtocolError(GroupError):
    """Members of one group name no assignor they all support."""

    kafka_code = 23  # INCONSISTENT_GROUP_PROTOCOL


class GroupNotEmptyError(GroupError):
    kafka_code = 68  # NON_EMPTY_GROUP


class GroupIdNotFoundError(GroupError):
    """No group of that id exists (no members, no committed offsets)."""

    kafka_code = 69  # GROUP_ID_NOT_FOUND


class GroupSubscribedToTopicError(GroupError):
    """Offsets of a topic the group's members consume cannot be deleted while they do."""

    kafka_code = 86  # GROUP_SUBSCRIBED_TO_TOPIC


class FencedInstanceError(GroupError):
    kafka_code = 82  # FENCED_INSTANCE_ID


# The consumer group protocol (KIP-848) --------------------------------------------------
class ConsumerGroupError(GroupError):
    """Base for consumer-group-protocol errors."""


class FencedMemberEpochError(ConsumerGroupError):
    """A heartbeat with an epoch the member does not have: it must rejoin with epoch 0."""

    kafka_code = 110  # FENCED_MEMBER_EPOCH


class StaleMemberEpochError(ConsumerGroupError):
    """An offset commit or fetch with a member epoch that is not the member's current one."""

    kafka_code = 113  # STALE_MEMBER_EPOCH


class UnreleasedInstanceIdError(ConsumerGroupError):
    """A member joins with the instance id of a static member that has not left."""

    kafka_code = 111  # UNRELEASED_INSTANCE_ID


class UnsupportedAssignorError(ConsumerGroupError):
    kafka_code = 112  # UNSUPPORTED_ASSIGNOR


class InvalidRegularExpressionError(ConsumerGroupError):
    kafka_code = 128  # INVALID_REGULAR_EXPRESSION


class InvalidHeartbeatError(ConsumerGroupError):
    kafka_code = 42  # INVALID_REQUEST


class SecurityError(StreamlabError):
    """Authentication or authorization refused a client of ``streamlab serve``."""


class AuthenticationError(SecurityError):
    """SASL credentials were wrong, or the exchange broke the mechanism's rules."""

    kafka_code = 58  # SASL_AUTHENTICATION_FAILED


class UnsupportedSaslMechanismError(SecurityError):
    kafka_code = 33  # UNSUPPORTED_SASL_MECHANISM


class AuthorizationError(SecurityError):
    """The principal has no ACL allowing the operation (or one denying it)."""

    kafka_code = 31  # CLUSTER_AUTHORIZATION_FAILED


class TopicAuthorizationError(AuthorizationError):
    kafka_code = 29  # TOPIC_AUTHORIZATION_FAILED


class GroupAuthorizationError(AuthorizationError):
    kafka_code = 30  # GROUP_AUTHORIZATION_FAILED


class InvalidAclError(SecurityError, ValueError):
    """An ACL binding or filter that Kafka would refuse (unknown type, bad principal)."""

    kafka_code = 42  # INVALID_REQUEST


class TransactionError(StreamlabError):
    """A transactional producer's request that its transaction's state does not allow."""


class ConcurrentTransactionsError(StreamlabError):
    """The transaction is being completed: try again shortly."""

    retriable = True
    kafka_code = 51  # CONCURRENT_TRANSACTIONS


class ProducerFencedError(TransactionError):
    """A newer producer with the same transactional id exists (or the transaction timed
    out and the coordinator bumped the epoch): this one must stop."""

    kafka_code = 90  # PRODUCER_FENCED


class InvalidProducerEpochError(TransactionError):
    kafka_code = 47  # INVALID_PRODUCER_EPOCH


class OutOfOrderSequenceError(StreamlabError):
    """An idempotent producer's batch does not continue its sequence (a batch was lost)."""

    kafka_code = 45  # OUT_OF_ORDER_SEQUENCE_NUMBER


class InvalidTxnStateError(TransactionError):
    kafka_code = 48  # INVALID_TXN_STATE


class InvalidProducerIdMappingError(TransactionError):
    """The producer id is not the one the coordinator gave this transactional id."""

    kafka_code = 49  # INVALID_PRODUCER_ID_MAPPING


class InvalidTransactionTimeoutError(TransactionError, ValueError):
    kafka_code = 50  # INVALID_TRANSACTION_TIMEOUT


# Share groups (KIP-932) --------------------------------------------------------------------
class ShareGroupError(GroupError):
    """Base for share-group errors."""


class InvalidRecordStateError(ShareGroupError):
    """Records acknowledged or renewed by a member that does not hold them (any more):
    their lock expired, they were acknowledged already, or they were never delivered to it."""

    kafka_code = 121  # INVALID_RECORD_STATE

    def __init__(self, message: str, *, topic: str | None = None, partition: int | None = None,
                 offsets: Iterable[int] = ()) -> None:  # fmt: skip
        super().__init__(message, topic=topic, partition=partition)
        self.offsets = sorted(offsets)


class GroupTypeError(ShareGroupError):
    """A share group and a classic consumer group cannot have the same name."""

    kafka_code = 69  # GROUP_ID_NOT_FOUND: what Kafka answers for a group of the other type


class ShareOperationError(ShareGroupError, TypeError):
    """An operation a share consumer does not have (seek, assign, position)."""


# Schema Registry errors: ``error_code`` is Confluent's REST error code, which the served
# registry answers with and confluent-kafka's SchemaRegistryClient raises as SchemaRegistryError.
class SchemaRegistryError(StreamlabError):
    error_code: ClassVar[int] = 50001  # error in the backend data store
    http_status: ClassVar[int] = 500


class SubjectNotFoundError(SchemaRegistryError, KeyError):
    error_code, http_status = 40401, 404

    def __str__(self) -> str:
        return str(self.args[0])


class VersionNotFoundError(SubjectNotFoundError):
    error_code, http_status = 40402, 404


class SchemaNotFoundError(SubjectNotFoundError):
    error_code, http_status = 40403, 404


class SubjectSoftDeletedError(SchemaRegistryError):
    """The subject was soft-deleted; delete it again with ``permanent=True`` to remove it."""

    error_code, http_status = 40404, 404


class SubjectNotSoftDeletedError(SchemaRegistryError):
    """A permanent delete needs a soft delete first, as in Confluent's registry."""

    error_code, http_status = 40405, 404


class VersionNotSoftDeletedError(SchemaRegistryError):
    error_code, http_status = 40407, 404


class IncompatibleSchemaError(SchemaRegistryError, ValueError):
    """The schema breaks the subject's compatibility level; the message lists why."""

    error_code, http_status = 409, 409


class InvalidSchemaError(SchemaRegistryError, ValueError):
    error_code, http_status = 42201, 422


class InvalidVersionError(SchemaRegistryError, ValueError):
    error_code, http_status = 42202, 422


class InvalidCompatibilityLevelError(SchemaRegistryError, ValueError):
    error_code, http_status = 42203, 422


class SchemaDecodeError(SerializationError):
    """A record's bytes do not decode with the schema its Confluent header names (or
    a value does not encode with the schema given)."""


class ReferenceExistsError(SchemaRegistryError):
    """Another schema references this version: it cannot be deleted."""

    error_code, http_status = 42206, 422


def _all_subclasses(cls: type[StreamlabError]) -> list[type[StreamlabError]]:
    out: list[type[StreamlabError]] = []
    sub: type[StreamlabError]
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


_EVERY_ERROR: list[type[StreamlabError]] = [StreamlabError, *_all_subclasses(StreamlabError)]
KAFKA_ERROR_CODES: dict[type[StreamlabError], int] = {cls: cls.kafka_code for cls in _EVERY_ERROR}


def kafka_code_for(exc: BaseException) -> int:
    """The Kafka protocol error code for an exception (UNKNOWN_SERVER_ERROR if none fits)."""
    return exc.kafka_code if isinstance(exc, StreamlabError) else -1
