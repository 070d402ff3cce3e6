"""``lab.sql`` over topics whose values are in Confluent's wire format: such a topic's
table has its values decoded through the lab's Schema Registry, as ``replay`` decodes them
(record fields as columns, ``value_error`` for rows that do not decode).

A topic counts as registry-framed when the registry has a subject for it under the
TopicNameStrategy (``<topic>-value``), the subject every streamlab producer and
confluent-kafka's serializers register under by default. Then every topic the statement
names is replayed into memory and the statement runs over those frames. So is a topic
given formats of its own (``lab.set_format``): it is read as replay reads it (the Parquet
views of the embedded broker are skipped: a DuckDB view cannot run fastavro). Statements
over other topics run as before, and never touch the registry: an embedded lab's registry
is consulted only once its ``_schemas`` topic exists, a ``kafka://`` one only when
``schema_registry=`` was given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from streamlab.errors import StreamlabError
from streamlab.front.record_formats import topic_formats
from streamlab.model.dataframes import typed_frame
from streamlab.model.views import quote

if TYPE_CHECKING:
    from streamlab import api
    from streamlab.front.lab import Lab


def _table_names(statement: str) -> set[str]:
    try:
        return {n.lower() for n in duckdb.get_table_names(statement)}
    except duckdb.Error:
        return set()  # DuckDB will say what is wrong with it when it runs


def _framed(lab: Lab, topics: list[str]) -> bool:
    if any(topic_formats(lab.backend, topic) != ("auto", "auto") for topic in topics):
        return True  # read as lab.set_format said
    if not lab.backend.has_schema_registry():
        return False  # no schema was ever registered here (and no registry is created now)
    try:
        subjects = set(lab.backend.schema_registry().subjects())
    except StreamlabError:  # a kafka:// lab without schema_registry=, or the registry unreachable
        return False
    return any(f"{topic}-value" in subjects for topic in topics)


def registry_sql(lab: Lab, statement: str, *, isolation_level: api.IsolationLevel) -> pd.DataFrame | None:
    """The statement's result over decoded topics, or None when it names no registry-framed
    topic (then ``lab.sql`` runs it as ever)."""
    named = _table_names(statement)
    if not named:
        return None
    all_topics = {str(row["name"]) for row in lab.backend.topic_rows()}
    topics = sorted(t for t in all_topics if t.lower() in named)
    if not topics or not _framed(lab, topics):
        return None
    con = duckdb.connect()
    try:
        for i, topic in enumerate(topics):
            frame = lab.replay(topic, isolation_level=isolation_level, progress=False)
            con.register(f"_decoded_{i}", frame)
            con.execute(f"CREATE TEMP VIEW {quote(topic)} AS SELECT * FROM _decoded_{i}")
        return typed_frame(con.sql(statement).to_arrow_table())
    finally:
        con.close()
