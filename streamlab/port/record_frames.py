"""One poll's records as the DataFrame ``replay`` would give for them (``poll_frame``).

Every backend's consumer shares this. The records go back into the stored form (keys and
values as bytes with their format, JSON objects expanded into ``value_fields``, as
:mod:`streamlab.model.fields` does at seal time), through the same decoded view as a
replay (:func:`streamlab.model.views.view_sql`), and into pandas by replay's own shaping
(:mod:`streamlab.model.dataframes`): so a micro-batch has the
columns, dtypes and decoding of ``lab.replay`` over the same records, plus ``topic``
first (a poll may span topics).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

from streamlab.model.dataframes import replay_dataframe
from streamlab.model.fields import expand_json_objects
from streamlab.model.schema import HEADER_TYPE, TIMESTAMP_TYPE
from streamlab.model.scratch_sql import scratch_cursor
from streamlab.model.serde import encode
from streamlab.model.types import Record
from streamlab.model.views import FIELDS_COLUMN, view_sql
from streamlab.port.record_decode import RecordDecoder

__all__ = ["polled_frame", "records_frame", "records_table", "shaped_table"]

_ids = itertools.count()


def records_table(records: Sequence[Record]) -> pa.Table:
    """``records`` (of one topic) as stored rows: ``partition`` and the record schema's
    columns, plus ``value_fields`` when values are JSON objects sharing one schema.

    Keys and values are encoded again (``encode(decode(b, f))`` gives back the same
    format and the same JSON document, though not always its original spacing)."""
    keys = [encode(r.key, what="key") for r in records]
    values = [encode(r.value) for r in records]
    table = pa.table(
        {
            "partition": pa.array([r.partition for r in records], pa.int32()),
            "offset": pa.array([r.offset for r in records], pa.int64()),
            "timestamp": pa.array([r.timestamp for r in records], pa.int64()).cast(TIMESTAMP_TYPE),
            "key": pa.array([k for k, _ in keys], pa.binary()),
            "key_format": pa.array([f for _, f in keys], pa.int8()),
            "value": pa.array([v for v, _ in values], pa.binary()),
            "value_format": pa.array([f for _, f in values], pa.int8()),
            "headers": pa.array(
                [[{"key": k, "value": v} for k, v in r.headers.items()] or None for r in records], HEADER_TYPE
            ),
        }
    )
    fields = expand_json_objects(table) if table.num_rows else None
    return table if fields is None else table.append_column(FIELDS_COLUMN, fields)


def shaped_table(records: Sequence[Record], *, raw: bool = False, headers: bool = False) -> pa.Table:
    """The decoded Arrow table a replay of exactly ``records`` (one topic) gives:
    ordered by partition and offset, as ``Backend.replay_table`` returns it."""
    with scratch_cursor() as con:
        name = f"_polled_{next(_ids)}"
        con.register(name, records_table(records))
        view = view_sql(con, f"SELECT * FROM {name}", raw=raw, headers=headers, formats=True)
        return con.sql(f'SELECT * FROM ({view}) ORDER BY partition, "offset"').to_arrow_table()


def records_frame(records: Sequence[Record], *, raw: bool = False, headers: bool = False) -> pd.DataFrame:
    """``records`` as one DataFrame: ``topic``, then replay's columns; rows ordered by
    topic, partition and offset. No records give the columns of an empty replay."""
    by_topic: dict[str, list[Record]] = {}
    # In replay's order, so JSON fields become columns in the order replay gives them
    for record in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        by_topic.setdefault(record.topic, []).append(record)
    if not by_topic:
        by_topic[""] = []
    frames = []
    for topic in sorted(by_topic):
        frame = replay_dataframe(shaped_table(by_topic[topic], raw=raw, headers=headers), raw=raw)
        frame.insert(0, "topic", pd.Series(topic, index=frame.index, dtype=pd.StringDtype("pyarrow")))
        frames.append(frame)
    if len(frames) == 1:
        return frames[0]
    # Topics may have different field columns: each row has NA in the others' columns.
    return pd.concat(frames, ignore_index=True)


def polled_frame(records: Sequence[Record], decoder: RecordDecoder | None, *, raw: bool, headers: bool) -> pd.DataFrame:
    """A poll's records as :func:`records_frame` shapes them, registry-framed values decoded
    by the consumer's ``decoder`` (when it has one): ``poll_frame`` on every backend."""
    frame = records_frame(records, raw=raw, headers=headers)
    return decoder.frame(frame, raw=raw) if decoder is not None else frame
