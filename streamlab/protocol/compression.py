"""Record-batch compression codecs (attributes bits 0-2): gzip, snappy, lz4, zstd.

Only the records section of a batch is compressed. The details are the ones Kafka's
clients need: lz4 frames of independent blocks, snappy both raw and xerial-framed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import cramjam

from streamlab.protocol.batch_layout import INT32
from streamlab.protocol.varint import Malformed


def _lz4_compress(data: bytes) -> bytes:
    # Kafka's Java reader (KafkaLZ4BlockInputStream) only accepts independent blocks,
    # and cramjam's one-shot lz4.compress links them.
    compressor = cramjam.lz4.Compressor(block_linked=False, content_checksum=False)
    compressor.compress(data)
    return bytes(compressor.finish())


_XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
_XERIAL_HEADER_SIZE: Final = 16  # magic + int32 version + int32 min-compatible version


def _snappy_decompress(data: bytes) -> bytes:
    # Java clients (snappy-java's SnappyOutputStream) and kafka-python frame snappy data
    # in xerial blocks; librdkafka sends one raw block. Both appear on the wire.
    if not data.startswith(_XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(data))
    # The version fields are ignored: some producers write them little-endian.
    pos = _XERIAL_HEADER_SIZE
    end = len(data)
    if pos > end:
        raise Malformed("xerial snappy header is truncated")
    blocks = []
    while pos < end:
        if end - pos < 4:
            raise Malformed("xerial snappy block length is truncated")
        (size,) = INT32.unpack_from(data, pos)
        pos += 4
        if size < 0 or pos + size > end:
            raise Malformed(f"xerial snappy block of {size} bytes overruns the data")
        blocks.append(bytes(cramjam.snappy.decompress_raw(data[pos : pos + size])))
        pos += size
    return b"".join(blocks)


COMPRESS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "gzip": lambda data: bytes(cramjam.gzip.compress(data, level=6)),
    "snappy": lambda data: bytes(cramjam.snappy.compress_raw(data)),
    "lz4": _lz4_compress,
    # Kafka's default zstd level; cramjam's own default (11) is several times slower.
    "zstd": lambda data: bytes(cramjam.zstd.compress(data, level=3)),
}
DECOMPRESS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "gzip": lambda data: bytes(cramjam.gzip.decompress(data)),
    "snappy": _snappy_decompress,
    "lz4": lambda data: bytes(cramjam.lz4.decompress(data)),
    "zstd": lambda data: bytes(cramjam.zstd.decompress(data)),
}
