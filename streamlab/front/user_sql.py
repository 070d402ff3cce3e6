"""SQL a person typed into ``lab.sql``: what every backend checks before and after running it.

DuckDB's own errors (syntax, unknown table or column, a failed cast) say what is wrong;
they reach the user as :class:`~streamlab.errors.QueryError` with DuckDB's message, so
``except StreamlabError`` catches them like every other streamlab error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from streamlab.errors import QueryError


def check_statement(statement: object) -> str:
    """``statement`` if it holds at least one SQL statement, else :class:`QueryError`."""
    if not isinstance(statement, str):
        raise QueryError(f"lab.sql takes the SQL as a str, got {type(statement).__name__}")
    with query_errors():
        if not duckdb.extract_statements(statement):
            raise QueryError(
                "lab.sql was given no SQL statement; for example lab.sql('SELECT * FROM \"my-topic\" LIMIT 10')"
            )
    return statement


@contextmanager
def query_errors() -> Iterator[None]:
    """DuckDB's errors from user SQL as :class:`QueryError`, with DuckDB's message."""
    try:
        yield
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
