"""A minimal raw Kafka client for tests that need exact control over the bytes sent.

Requests are built with kio's schemas (a library independent of the server's handlers,
though the server parses with it too) and kafka-python's sample-filled messages (an
independent implementation), so the server sees what real clients would send.
"""

from __future__ import annotations

import io
import socket
import struct
import time
import warnings
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from streamlab.protocol.batch_encoding import encode_batch
from streamlab.protocol.record_batch import WireRecord

with warnings.catch_warnings():  # kafka-python loads schemas with deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.protocol.admin
    import kafka.protocol.consumer
    import kafka.protocol.metadata
    import kafka.protocol.producer
    from kafka.protocol.api_message import ApiMessage


def kio_request(api_key: int, version: int, **fields: Any) -> Any:
    """A kio request body; nested values may be dicts naming the nested type's fields."""
    schema = load_request_schema(api_key, version)
    return _instantiate(schema, fields)


def _instantiate(cls: Any, fields: dict[str, Any]) -> Any:
    import dataclasses
    import sys
    import typing

    module = sys.modules[cls.__module__]
    hints = typing.get_type_hints(cls, vars(module))
    out = {}
    for name, value in fields.items():
        hint = hints[name]
        parts = [hint, *typing.get_args(hint)]
        parts += [a for p in parts for a in typing.get_args(p)]  # tuple[X, ...] | None
        inner = [a for a in parts if isinstance(a, type) and dataclasses.is_dataclass(a)]
        if isinstance(value, list) and inner:
            out[name] = tuple(_instantiate(inner[0], v) for v in value)
        elif isinstance(value, dict) and dataclasses.is_dataclass(hint):
            out[name] = _instantiate(hint, value)
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return cls(**out)


def frame(body: Any, correlation_id: int = 1, client_id: str | None = "raw-test") -> bytes:
    """A size-prefixed request frame for a kio request body."""
    header_cls = body.__header_schema__
    header_fields: dict[str, Any] = {
        "request_api_key": body.__api_key__,
        "request_api_version": body.__version__,
        "correlation_id": correlation_id,
    }
    if "client_id" in {f for f in header_cls.__dataclass_fields__}:
        header_fields["client_id"] = client_id
    out = io.BytesIO()
    entity_writer(header_cls)(out, header_cls(**header_fields))
    entity_writer(type(body))(out, body)
    data = out.getvalue()
    return struct.pack(">i", len(data)) + data


def records(*values: bytes, key: bytes | None = None, timestamp: int | None = None, **batch: Any) -> bytes:
    """One batch of ``values``, timestamped from ``timestamp`` (default now) a millisecond apart."""
    start = int(time.time() * 1000) if timestamp is None else timestamp
    return encode_batch([WireRecord(i, start + i, key, v) for i, v in enumerate(values)], **batch)


class RawClient:
    """A blocking socket speaking size-prefixed frames."""

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._next_id = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, body: Any) -> int:
        correlation_id = self._next_id
        self._next_id += 1
        self.sock.sendall(frame(body, correlation_id))
        return correlation_id

    def recv_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def recv_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self.recv_exactly(4))
        return self.recv_exactly(size)

    def recv(self, api_key: int, version: int, correlation_id: int | None = None) -> Any:
        data = self.recv_frame()
        schema = load_response_schema(api_key, version)
        (got,) = struct.unpack_from(">i", data)
        if correlation_id is not None:
            assert got == correlation_id
        pos = 4 + (1 if schema.__flexible__ and api_key != 18 else 0)  # header v1 tagged fields
        body, _ = entity_reader(schema)(data, pos)
        return body

    def call(self, body: Any) -> Any:
        return self.recv(body.__api_key__, body.__version__, self.send(body))

    def is_closed_by_server(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


# --- sample requests from kafka-python, for every supported API version -----------------
KAFKA_PYTHON: dict[int, Any] = {}
for _module in (kafka.protocol.metadata, kafka.protocol.producer, kafka.protocol.consumer, kafka.protocol.admin):
    for _name in _module.__all__:
        _obj = getattr(_module, _name)
        if isinstance(_obj, type) and issubclass(_obj, ApiMessage) and _obj.type == "request":
            KAFKA_PYTHON[_obj.API_KEY] = _obj


def _value(type_str: str, name: str) -> Any:
    values: dict[str, Any] = {
        "int8": 1, "int16": 2, "uint16": 5, "int32": 3, "int64": 4, "float64": 0.5, "bool": True,
        "string": f"s-{name}", "bytes": b"by", "records": records(b"v1", b"v2"), "bitfield": {3, 4},
    }  # fmt: skip
    if type_str == "uuid":
        import uuid

        return uuid.UUID(int=0x1234)
    return values[type_str]


def _fill(struct_field: Any, version: int, data_class: Any) -> Any:
    kwargs = {}
    for name, field in struct_field.fields.items():
        if not field.for_version_q(version):
            continue
        if field.is_struct_array():
            kwargs[name] = [_fill(field.array_of, version, field.array_of.data_class)]
        elif field.is_array():
            kwargs[name] = [_value(field.array_of.type_str, name)] * 2
        elif field.is_struct():
            kwargs[name] = _fill(field, version, field.data_class)
        else:
            kwargs[name] = _value(field.type_str, name)
    return data_class(version=version, **kwargs)


def sample_frame(api_key: int, version: int, correlation_id: int = 7) -> bytes:
    """A valid request frame (with size prefix), every field set, from kafka-python."""
    cls = KAFKA_PYTHON[api_key]
    request = _fill(cls._struct, version, cls)
    request.with_header(correlation_id=correlation_id, client_id="fuzz")
    data = bytes(request.encode(header=True))
    return struct.pack(">i", len(data)) + data
