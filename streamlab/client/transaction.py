"""A transactional embedded producer's side of a transaction (Kafka's ``TransactionManager``).

The coordinator is the broker's one :class:`~streamlab.broker.transactions.TransactionCoordinator`,
the same object and state file `streamlab serve` uses: markers, the aborted-transaction
index and the last stable offset are the ones a Kafka client sees over the wire.

States, as in Kafka's clients: ``uninitialized`` until :meth:`ProducerTransaction.init`
gets the transactional id's producer id and (bumped) epoch, which fences any older
producer with the same id and aborts the transaction it left open; ``ready`` between
transactions; ``in_transaction`` from ``begin`` to the end; ``fenced`` for good once a
newer producer took the id (every later call raises
:class:`~streamlab.errors.ProducerFencedError`: close the producer). A record that fails
inside a transaction makes the commit fail: abort, then try again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Literal

import pyarrow as pa

from streamlab.broker import Broker
from streamlab.broker.transaction_registry import coordinator
from streamlab.broker.transactions import TransactionCoordinator
from streamlab.errors import (
    InvalidProducerEpochError,
    InvalidTxnStateError,
    ProducerFencedError,
)
from streamlab.model.names import validate_group_id
from streamlab.model.types import OffsetAndMetadata, TopicPartition, committable

State = Literal["uninitialized", "ready", "in_transaction", "fenced"]


class ProducerTransaction:
    """The transactional id, producer id, epoch and current transaction of one producer."""

    def __init__(self, broker: Broker, transactional_id: str, *, timeout_ms: int) -> None:
        """``transactional_id`` and ``timeout_ms`` come checked (``port.producer_base.ProducerSettings``)."""
        self._broker = broker
        self.transactional_id = transactional_id
        self.timeout_ms = timeout_ms
        self.producer_id, self.epoch = -1, -1
        self.state: State = "uninitialized"
        self._added: set[tuple[str, int]] = set()  # partitions added to the current transaction
        self._failure: BaseException | None = None  # the first record of this transaction that failed
        self._lock = threading.Lock()  # the sender thread adds partitions while the user sends

    def _coordinator(self) -> TransactionCoordinator:
        found = coordinator(self._broker)  # raises ClosedError once the broker is closed
        assert found is not None
        return found

    def _fenced(self, exc: BaseException) -> ProducerFencedError:
        self.state = "fenced"
        if isinstance(exc, ProducerFencedError):
            return exc
        fenced = ProducerFencedError(
            f"producer of transactional id {self.transactional_id!r} is fenced: a newer producer with the same "
            f"transactional_id took over (or its transaction timed out); close this producer ({exc})"
        )
        fenced.__cause__ = exc
        return fenced

    def _call(self, run: Callable[[], object]) -> None:
        """Run a coordinator operation; a fenced producer stays fenced."""
        try:
            run()
        except (ProducerFencedError, InvalidProducerEpochError) as exc:
            raise self._fenced(exc) from None

    def _check_not_fenced(self) -> None:
        if self.state == "fenced":
            raise ProducerFencedError(
                f"the producer of transactional id {self.transactional_id!r} was fenced by a newer one; "
                "close it and create a new producer"
            )

    # the user's calls ---------------------------------------------------------------------
    def init(self) -> None:
        """InitProducerId: this producer becomes the transactional id's current one."""
        self._check_not_fenced()
        if self.state == "in_transaction":
            raise InvalidTxnStateError("init_transactions() inside a transaction: commit or abort it first")
        coord = self._coordinator()
        got: list[tuple[int, int]] = []
        tid, pid, epoch = self.transactional_id, self.producer_id, self.epoch
        self._call(lambda: got.append(coord.init_producer(tid, self.timeout_ms, producer_id=pid, epoch=epoch)))
        (self.producer_id, self.epoch), self.state = got[0], "ready"

    def begin(self) -> None:
        self._check_not_fenced()
        if self.state == "uninitialized":
            self.init()  # implied, so a notebook needs no separate call
        if self.state == "in_transaction":
            raise InvalidTxnStateError("begin_transaction(): a transaction is already open; commit or abort it first")
        with self._lock:
            self._added.clear()
            self._failure = None
        self.state = "in_transaction"

    def check_send(self, what: str = "send") -> None:
        """Records of a transactional producer (and ``what`` else) go inside a transaction."""
        if self.state != "in_transaction":
            self._check_not_fenced()
            raise InvalidTxnStateError(
                f"{what}() on the producer of transactional id {self.transactional_id!r} needs an open "
                "transaction: call begin_transaction() first"
            )

    def send_offsets(self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata], group: str) -> None:
        """Offsets ``group`` commits if (and only if) the transaction commits."""
        self.check_send("send_offsets_to_transaction")
        validate_group_id(group)
        normalized = {tp: committable(tp, om) for tp, om in offsets.items()}
        for tp in normalized:
            self._broker.log(tp.topic, tp.partition)  # an unknown partition: a clear error now
        coord = self._coordinator()
        tid, pid, epoch = self.transactional_id, self.producer_id, self.epoch
        self._call(lambda: coord.add_offsets(tid, pid, epoch, group))
        wanted = {(tp.topic, tp.partition): (om.offset, om.metadata or "") for tp, om in normalized.items()}
        self._call(lambda: coord.commit_offsets(tid, pid, epoch, group, wanted))

    def end(self, *, commit: bool) -> None:
        """EndTxn, once every record of the transaction is stored (the caller flushed)."""
        self._check_not_fenced()
        if self.state != "in_transaction":
            raise InvalidTxnStateError(
                f"{'commit' if commit else 'abort'}_transaction() without a transaction: call begin_transaction()"
            )
        failure = self._failure
        if commit and failure is not None:
            if isinstance(failure, ProducerFencedError):
                raise self._fenced(failure)
            raise InvalidTxnStateError(
                f"a record of this transaction was not stored ({failure}); abort_transaction() and try again"
            ) from failure
        coord = self._coordinator()
        tid, pid, epoch = self.transactional_id, self.producer_id, self.epoch
        self._call(lambda: coord.end(tid, pid, epoch, commit=commit))
        self.state = "ready"

    # the sender's calls -------------------------------------------------------------------
    def append(self, topic: str, partition: int, batch: pa.RecordBatch, *, sync: bool) -> int:
        """Store ``batch`` as part of the transaction (its partition added first); the base offset."""
        coord = self._coordinator()
        tid, pid, epoch = self.transactional_id, self.producer_id, self.epoch
        try:
            with self._lock:
                if (topic, partition) not in self._added:
                    coord.add_partitions(tid, pid, epoch, [(topic, partition)])
                    self._added.add((topic, partition))
            return coord.append(topic, partition, pid, epoch, batch, sync=sync)
        except (ProducerFencedError, InvalidProducerEpochError) as exc:
            error: BaseException = self._fenced(exc)
        except BaseException as exc:
            error = exc
        with self._lock:
            if self._failure is None:
                self._failure = error
        raise error
