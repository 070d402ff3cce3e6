"""What every share consumer has in common, whichever backend it runs on: no positions
(the share group decides who gets which record), and notebook-safe lifecycle methods.

:class:`~streamlab.client.share_consumer.ShareConsumer` (embedded) and
:class:`~streamlab.kafka.share_consumer.KafkaShareConsumer` (``kafka://``) build on it.
"""

from __future__ import annotations

from typing import Any, NoReturn

from streamlab.errors import ShareOperationError
from streamlab.model.types import TopicPartition
from streamlab.port.lifecycle import ClientLifecycle


class ShareConsumerBase(ClientLifecycle):
    _maker = "share_consumer"

    def _no_positions(self, what: str) -> NoReturn:
        raise ShareOperationError(
            f"a share consumer cannot {what}: the share group decides which records each member gets, and "
            "records come back only by release, reject or lock expiry. To read a topic again from an "
            "offset or a time, use lab.consumer(...) with seek() or lab.replay(...)"
        )

    def seek(self, tp: TopicPartition, offset: int) -> NoReturn:
        self._no_positions("seek")

    def seek_to_beginning(self, partitions: Any = None) -> NoReturn:
        self._no_positions("seek")

    def seek_to_end(self, partitions: Any = None) -> NoReturn:
        self._no_positions("seek")

    def seek_to_timestamp(self, timestamp: Any, partitions: Any = None) -> NoReturn:
        self._no_positions("seek")

    def position(self, tp: TopicPartition) -> NoReturn:
        self._no_positions("report a position")

    def assign(self, partitions: Any) -> NoReturn:
        self._no_positions("be assigned partitions (every member reads every partition)")
