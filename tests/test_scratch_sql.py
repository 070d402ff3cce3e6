"""The scratch DuckDB database: one per process, a cursor of its own per query."""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa
import pytest

from streamlab.model.scratch_sql import scratch_cursor


def test_what_a_cursor_registers_no_other_cursor_sees_and_closing_drops_it() -> None:
    with scratch_cursor() as first, scratch_cursor() as second:
        first.register("frame", pa.table({"v": [1]}))
        second.register("frame", pa.table({"v": [2]}))
        assert first.sql("SELECT v FROM frame").fetchall() == [(1,)]
        assert second.sql("SELECT v FROM frame").fetchall() == [(2,)]
    with scratch_cursor() as later, pytest.raises(duckdb.CatalogException, match="frame"):
        later.sql("SELECT v FROM frame").fetchall()


def test_large_strings_only_where_asked() -> None:
    with scratch_cursor() as plain, scratch_cursor(large_strings=True) as large:
        assert plain.sql("SELECT 'x' AS s").to_arrow_table().schema.field("s").type == pa.string()
        assert large.sql("SELECT 'x' AS s").to_arrow_table().schema.field("s").type == pa.large_string()


def test_threads_query_at_once_each_on_its_own_cursor() -> None:
    results: dict[int, list[tuple[int]]] = {}

    def query(n: int) -> None:
        with scratch_cursor() as con:
            con.register("frame", pa.table({"v": list(range(n))}))
            results[n] = con.sql("SELECT count(*) FROM frame").fetchall()

    threads = [threading.Thread(target=query, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {n: [(n,)] for n in range(1, 9)}
