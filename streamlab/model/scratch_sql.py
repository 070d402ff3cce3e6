"""In-memory DuckDB for streamlab's own queries over Arrow tables it registers (a frame's
JSON in ``send_many``, a replay, a poll's frame).

Opening a DuckDB database costs about 30 ms; a cursor on an open one, next to nothing.
So each process keeps one database per kind of output and every query gets a cursor of
its own: a connection of its own, whose registered tables and temporary views no other
cursor sees, closed when the query is done. User SQL (``lab.sql``) never runs here: it
may create tables or change settings, so it gets a database of its own each time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

__all__ = ["scratch_cursor"]

_lock = threading.Lock()
_databases: dict[bool, duckdb.DuckDBPyConnection] = {}  # by large_strings: a database-wide setting


@contextmanager
def scratch_cursor(*, large_strings: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh cursor on this process's scratch database, closed on exit. ``large_strings``:
    strings come back as Arrow large strings (a replay may hold more than 2 GiB of text in
    one column)."""
    with _lock:
        database = _databases.get(large_strings)
        if database is None:
            database = _databases[large_strings] = duckdb.connect(":memory:")
            if large_strings:
                database.execute("SET arrow_large_buffer_size = true")
        cursor = database.cursor()
    try:
        yield cursor
    finally:
        cursor.close()
