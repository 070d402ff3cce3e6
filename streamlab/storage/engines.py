"""Storage engines by name; the broker picks one from this table, never by if/elif."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from streamlab.storage.catalog import Catalog
from streamlab.storage.parquet_log import ParquetLogEngine

ENGINES: dict[str, Callable[[Path, Catalog], ParquetLogEngine]] = {
    "parquet": ParquetLogEngine,
}
