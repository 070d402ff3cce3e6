"""Schemas of a Schema Registry (Avro, JSON Schema, Protobuf): their value types, parsing,
compatibility rules, the registry's state, and Confluent's wire format. No I/O: the durable
store is :mod:`streamlab.broker.schema_registry`, the REST API :mod:`streamlab.server.registry_http`."""
