"""Static proof that both backends implement the port and their clients the public
Protocols: mypy checks these assignments (nothing here runs at import time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamlab import api
    from streamlab.client.backend import EmbeddedBackend
    from streamlab.client.consumer import Consumer
    from streamlab.client.producer import Producer
    from streamlab.client.share_consumer import ShareConsumer
    from streamlab.kafka.backend import KafkaBackend
    from streamlab.kafka.consumer import KafkaConsumer
    from streamlab.kafka.producer import KafkaProducer
    from streamlab.kafka.share_consumer import KafkaShareConsumer
    from streamlab.port.backend import Backend

    def _embedded(backend: EmbeddedBackend, p: Producer, c: Consumer, s: ShareConsumer) -> None:
        _: Backend = backend
        _p: api.Producer = p
        _c: api.Consumer = c
        _s: api.ShareConsumer = s

    def _kafka(backend: KafkaBackend, p: KafkaProducer, c: KafkaConsumer, s: KafkaShareConsumer) -> None:
        _: Backend = backend
        _p: api.Producer = p
        _c: api.Consumer = c
        _s: api.ShareConsumer = s
