"""The backend port, below both backends: the :class:`~streamlab.port.backend.Backend`
Protocol the embedded broker's backend (``client/``) and the Kafka backend (``kafka/``)
implement, and what their clients share (the share consumer base, consumer rules)."""
