"""Storage engines by name; the broker picks one from this table, never by if/elif."""

from __future__ import annotations

from streamlab.storage.base import EngineFactory
from streamlab.storage.parquet_log import ParquetLogEngine

ENGINES: dict[str, EngineFactory] = {
    "parquet": ParquetLogEngine,
}
