"""Kafka wire protocol: record batch codec and request/response framing (no I/O)."""
