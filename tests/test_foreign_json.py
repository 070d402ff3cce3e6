"""Odd JSON from other programs, and values older streamlab versions stored, on the
embedded broker (the same expansion serves every backend: see
tests/conformance/test_conformance_foreign_json.py for the three of them)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pyarrow as pa

import streamlab
from streamlab.broker.produce import append
from streamlab.client.backend import EmbeddedBackend
from streamlab.model.schema import build_batch
from streamlab.model.serde import FMT_JSON


def test_odd_json_values_each_get_their_due(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    values = [
        b'{"a": 1, "a": 2}',  # a repeated key: the last one wins, as in JSON.parse
        b'{"a": 3}{"a": 4}',  # two documents in one value: not JSON
        b'{"a": 5',  # cut short
        b'\t{"a": 6}\r\n',
        '{"a": 7}'.encode("utf-16"),  # not UTF-8
    ]
    with lab.producer() as p:
        for value in values:
            p.send(topic, value=value)
    for _ in range(2):  # the active segment, then the sealed one
        out = lab.replay(topic)
        assert out["a"].tolist() == [2, pd.NA, pd.NA, 6, pd.NA]
        assert out["value_error"].fillna("-").tolist() == ["-", "not JSON", "not JSON", "-", "not JSON"]
        assert out["value"].tolist() == [None, values[1], values[2], None, values[4]]
        lab.roll(topic)


def test_partitions_whose_fields_disagree_on_a_type_still_replay(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    with lab.producer() as p:
        p.send(topic, value={"a": 1, "only0": True}, partition=0)
        p.send(topic, value={"a": "x", "only1": 2.5}, partition=1)
    lab.roll(topic)
    out = lab.replay(topic)
    assert out["a"].tolist() == ["1", "x"]  # DuckDB reads an int and a text field as text
    assert out["only0"].tolist() == [True, pd.NA] and out["only1"].fillna(0).tolist() == [0, 2.5]


def test_empty_json_values_stored_by_older_versions_replay_as_null(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    """send_many of a frame with only key/timestamp columns used to store b"" as JSON."""
    topic = make_topic()
    assert isinstance(lab.backend, EmbeddedBackend)
    batch = build_batch(base_offset=0, timestamps=[1_700_000_000_000] * 2, keys=[b"k", b"k"], key_formats=[1, 1],
                        values=pa.array([b"", b""], pa.binary()), value_formats=[FMT_JSON, FMT_JSON])  # fmt: skip
    append(lab.backend.broker, topic, 0, batch, sync=True)
    assert lab.replay(topic)["value"].tolist() == [None, None]
    assert lab.replay(topic, raw=True)["value"].tolist() == ["", ""]  # the stored text, as it is
    with lab.consumer([topic], auto_offset_reset="earliest") as c:
        assert [r.value for r in c.poll(timeout=5, max_records=10)] == [None, None]
