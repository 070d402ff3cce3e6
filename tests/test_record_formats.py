"""Registry-framed and foreign records in the live tail, the topic browser and the message
browser; keys decoded in ``lab.browse``; per-topic formats (``lab.set_format``) honoured
by replay, sql, poll, browse and the widgets, and kept in the data directory."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import streamlab
from streamlab.errors import ConfigError
from streamlab.notebook.browser import MessageBrowser
from streamlab.notebook.browser_state import MessageBrowserState
from streamlab.notebook.topic_state import TopicBrowserState

pytest.importorskip("fastavro")

ADDRESS = {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]}
ORDER = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "ship_to", "type": ADDRESS},
    ],
}
USER_KEY = {"type": "record", "name": "UserKey", "fields": [{"name": "user", "type": "string"}]}
UNKNOWN_ID = b"\x00\x00\x00\x00\x63not avro"  # framed, schema id 99 never registered


def _mixed_topic(lab: streamlab.Lab, topic: str) -> None:
    """An Avro record with an Avro key, a JSON Schema record, a foreign JSON object and a
    framed value whose schema id is unknown, as other programs write them."""
    order = lab.schemas.register(f"{topic}-value", ORDER)
    key = lab.schemas.register(f"{topic}-key", USER_KEY)
    event = lab.schemas.register("events-value", {"type": "object", "properties": {"id": {"type": "integer"}}},
                                 schema_type="JSON")  # fmt: skip
    lab.create_topic(topic)
    with lab.producer() as p:
        p.send(topic, value=lab.schemas.encode({"id": 1, "ship_to": {"city": "Oslo"}}, order),
               key=lab.schemas.encode({"user": "ada"}, key))  # fmt: skip
        p.send(topic, value=lab.schemas.encode({"id": 2}, event), key=b"k2")
        p.send(topic, value=b'{"id": 3, "ship_to": {"city": "Rome"}}', key=b"k3")
        p.send(topic, value=UNKNOWN_ID, key=b"k4")


def test_browse_decodes_keys_and_values_and_keeps_the_undecodable_row(lab: streamlab.Lab) -> None:
    _mixed_topic(lab, "mixed")
    page = lab.browse("mixed")
    assert page["key"].tolist() == [{"user": "ada"}, b"k2", b"k3", b"k4"]
    assert page["id"].tolist() == [1, 2, 3, pd.NA]
    assert page["ship_to.city"].tolist()[:1] == ["Oslo"]
    assert page["value_error"].tolist()[:3] == [pd.NA] * 3 and "99" in page["value_error"].iloc[3]
    assert page["value"].iloc[3] == UNKNOWN_ID  # the raw value beside its error
    assert lab.browse("mixed", search="k4")["offset"].tolist() == [3]  # filters read the stored bytes


def test_message_browser_shows_decoded_records_nested_and_the_error_of_the_one_that_is_not(
    lab: streamlab.Lab,
) -> None:
    _mixed_topic(lab, "mixed")
    state = MessageBrowserState(lab, "mixed")
    state.refresh()
    table = state.table()
    assert table["key"].tolist() == ['{"user": "ada"}', "k2", "k3", "k4"]
    assert table["id"].tolist() == ["1", "2", "3", ""]
    first = state.detail(0)
    assert first.key == '{\n  "user": "ada"\n}' and first.error == ""
    assert first.value == '{\n  "id": 1,\n  "ship_to": {\n    "city": "Oslo"\n  }\n}'  # nested again, not dotted
    assert state.detail(1).value == '{\n  "id": 2\n}'
    broken = state.detail(3)
    assert broken.value == "\\x00\\x00\\x00\\x00cnot avro" and "Schema 99 not found" in broken.error
    widget = MessageBrowser(lab, "mixed")
    widget.grid.selected_rows = [3]
    assert "not decoded:" in widget.detail.value and "Schema 99 not found" in widget.detail.value
    widget.grid.selected_rows = [0]
    assert "not decoded" not in widget.detail.value and "&quot;city&quot;: &quot;Oslo&quot;" in widget.detail.value


def test_live_tail_shows_decoded_records_and_says_which_one_did_not_decode(lab: streamlab.Lab) -> None:
    _mixed_topic(lab, "mixed")
    tail = streamlab.widgets.LiveTail(lab, "mixed", per_partition=5, autostart=False)
    try:
        records = tail.state.newest()[0]
        assert [r.value for r in records[:3]] == [
            {"id": 1, "ship_to": {"city": "Oslo"}}, {"id": 2}, {"id": 3, "ship_to": {"city": "Rome"}}
        ]  # fmt: skip
        assert records[0].key == {"user": "ada"} and records[3].value == UNKNOWN_ID
        assert [tail.state.error(r) for r in records[:3]] == [None] * 3
        assert tail.state.error(records[3]) == "value: Schema 99 not found"
        summary = tail.summary().splitlines()
        assert summary[2].endswith('key={"user": "ada"}  {"id": 1, "ship_to": {"city": "Oslo"}}')
        assert summary[-2].endswith("key=k4  \\x00\\x00\\x00\\x00cnot avro")  # escaped, not hidden
        assert summary[-1].strip() == "not decoded: value: Schema 99 not found"
        assert "<th" in tail.body.value and "not decoded" in tail.body.value and "Schema 99" in tail.body.value
    finally:
        tail.stop()


def test_topic_browser_preview_spreads_decoded_fields(lab: streamlab.Lab) -> None:
    _mixed_topic(lab, "mixed")
    state = TopicBrowserState(lab, "mixed")
    state.refresh()
    preview = state.preview
    assert preview["id"].tolist() == [1, 2, 3, pd.NA] and preview["ship_to.city"].tolist()[0] == "Oslo"
    assert preview["key"].tolist()[0] == {"user": "ada"} and "99" in preview["value_error"].iloc[3]


def test_a_topic_format_is_honoured_everywhere_a_call_does_not_say(tmp_path: Path) -> None:
    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            p.send("t", value={"a": 1}, key="k1")
            p.send("t", value=b"plain", key="k2")
        assert lab.formats("t") == {"key_format": "auto", "value_format": "auto"}
        lab.set_format("t", value_format="string")
        assert lab.formats("t") == {"key_format": "auto", "value_format": "string"}
        assert lab.replay("t")["value"].tolist() == ['{"a":1}', "plain"]
        assert "a" in lab.replay("t", value_format="auto").columns  # a call that says wins
        assert lab.sql('SELECT value FROM t ORDER BY "offset"')["value"].tolist() == ['{"a":1}', "plain"]
        assert lab.browse("t")["value"].tolist() == ['{"a":1}', "plain"]
        with lab.consumer("t", auto_offset_reset="earliest") as consumer:
            polled = []
            for _ in range(20):
                polled += consumer.poll(timeout=0.2)
                if len(polled) == 2:
                    break
        assert [r.value for r in polled] == ['{"a":1}', "plain"]
        with pytest.raises(ConfigError, match="value_format must be one of"):
            lab.set_format("t", value_format="xml")
        with pytest.raises(ConfigError, match="needs key_format=, value_format= or both"):
            lab.set_format("t")
    with streamlab.connect(tmp_path) as lab:  # kept in the data directory
        assert lab.formats("t")["value_format"] == "string"
        assert lab.replay("t")["value"].tolist() == ['{"a":1}', "plain"]
        lab.set_format("t", value_format="auto", key_format="bytes")
        assert lab.replay("t")["key"].tolist() == [b"k1", b"k2"] and lab.replay("t")["a"].tolist()[0] == 1


def test_avro_format_reads_unframed_avro_with_the_subjects_latest_schema(
    lab: streamlab.Lab, make_topic: Callable[..., str]
) -> None:
    import fastavro

    topic = make_topic()
    schema = {"type": "record", "name": "Reading", "fields": [{"name": "sensor", "type": "string"},
                                                                {"name": "celsius", "type": "double"}]}  # fmt: skip
    lab.schemas.register(f"{topic}-value", schema)
    json_id = lab.schemas.register("other-value", {"type": "object"}, schema_type="JSON")

    def avro(record: dict[str, object]) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
        return out.getvalue()

    with lab.producer() as p:
        p.send(topic, value=avro({"sensor": "s1", "celsius": 21.5}))  # no Confluent framing
        p.send(topic, value=lab.schemas.encode({"x": 1}, json_id))  # framed, but JSON Schema
        p.send(topic, value=b"\x02")  # truncated Avro
    auto = lab.replay(topic)
    assert "sensor" not in auto.columns  # unframed Avro is opaque bytes to "auto"
    frame = lab.replay(topic, value_format="avro")
    assert frame["sensor"].tolist() == ["s1", pd.NA, pd.NA] and frame["celsius"].tolist()[0] == 21.5
    assert frame["value_error"].iloc[0] is pd.NA
    assert "is JSON, not AVRO" in frame["value_error"].iloc[1] and frame["value_error"].iloc[2] is not pd.NA
    lab.set_format(topic, value_format="avro")
    assert lab.replay(topic)["sensor"].tolist()[0] == "s1"
    assert lab.sql(f'SELECT sensor FROM "{topic}" WHERE celsius > 20')["sensor"].tolist() == ["s1"]
    with lab.consumer(topic, auto_offset_reset="earliest") as consumer:
        polled = consumer.poll(timeout=1.0)
    assert polled[0].value == {"sensor": "s1", "celsius": 21.5}
    with pytest.raises(ConfigError, match="key_format must be one of"):
        lab.replay(topic, key_format="yaml")


def test_poll_frame_reads_a_topic_with_its_own_format(lab: streamlab.Lab, make_topic: Callable[..., str]) -> None:
    _mixed_topic(lab, "mixed")
    lab.set_format("mixed", value_format="avro")
    with lab.consumer("mixed", auto_offset_reset="earliest") as consumer:
        frame = pd.DataFrame()
        for _ in range(20):
            frame = consumer.poll_frame(timeout=0.2)
            if len(frame):
                break
    assert frame["id"].tolist()[0] == 1 and frame["ship_to.city"].tolist()[0] == "Oslo"
    errors = frame["value_error"].tolist()
    assert errors[0] is pd.NA and "is JSON, not AVRO" in errors[1] and "Schema 99 not found" in errors[3]


def test_protobuf_compatibility_through_lab_schemas(lab: streamlab.Lab) -> None:
    pytest.importorskip("proto_schema_parser")
    v1 = 'syntax = "proto3";\npackage shop;\nmessage Click { string user = 1; int64 n = 2; }\n'
    lab.schemas.register("clicks-value", v1, "PROTOBUF")
    assert lab.schemas.check_compatibility("clicks-value", v1.replace("int64 n = 2;", "int64 n = 2; bool vip = 3;"),
                                           "PROTOBUF")  # fmt: skip
    broken = lab.schemas.check_compatibility("clicks-value", v1.replace("int64 n", "double n"), "PROTOBUF")
    assert not broken and broken.messages == [
        "FIELD_SCALAR_KIND_CHANGED: shop.Click.n (field 2) type int64 became double "
        "(the new schema reading data of an earlier one)"
    ]


def test_the_cli_reads_a_topic_with_its_own_format_or_the_one_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamlab.cli.main import main

    with streamlab.connect(tmp_path) as lab:
        lab.create_topic("t")
        with lab.producer() as p:
            p.send("t", value={"a": 1})
        lab.set_format("t", value_format="string")
    read = ["--data", str(tmp_path), "consume", "t", "--from-beginning", "--count", "1", "--timeout", "2"]
    assert main([*read, "--format", "json"]) == 0
    assert '"value": "{\\"a\\":1}"' in capsys.readouterr().out  # the text, as the topic's format says
    assert main([*read, "--format", "json", "--value-format", "auto"]) == 0
    assert '"value": {"a": 1}' in capsys.readouterr().out
    out = tmp_path / "t.csv"
    assert main(["--data", str(tmp_path), "replay", "t", "--out", str(out), "--value-format", "auto"]) == 0
    assert pd.read_csv(out)["a"].tolist() == [1]


def test_proto_text_with_a_reference_decodes_without_generated_code(lab: streamlab.Lab) -> None:
    pytest.importorskip("proto_schema_parser")
    from google.protobuf import message_factory

    from streamlab.model.schemas.proto import descriptor_pool

    address = 'syntax = "proto3";\npackage geo;\nmessage Address { string city = 1; }\n'
    order = ('syntax = "proto3";\npackage shop;\nimport "geo/address.proto";\n'
             "message Order { int64 id = 1; geo.Address ship_to = 2; repeated string items = 3; }\n")  # fmt: skip
    lab.schemas.register("geo-address", address, "PROTOBUF")
    reference = {"name": "geo/address.proto", "subject": "geo-address", "version": 1}
    sid = lab.schemas.register("orders-value", order, "PROTOBUF", references=[reference])
    pool, _ = descriptor_pool(lab.schemas.get(sid), lab.schemas.port.resolve)
    message = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))(id=7, items=["a", "b"])
    message.ship_to.city = "Oslo"
    lab.create_topic("orders")
    with lab.producer() as p:  # framed as Confluent's serializers frame: magic byte, id, message index 0
        p.send("orders", value=b"\x00" + sid.to_bytes(4, "big") + b"\x00" + message.SerializeToString())
    frame = lab.replay("orders")
    assert frame[["id", "ship_to.city"]].values.tolist() == [[7, "Oslo"]]  # int64 as an integer, not JSON's text
    assert str(frame["id"].dtype) == "Int64"
    assert frame["items"].tolist() == [["a", "b"]]
    with pytest.raises(streamlab.errors.InvalidSchemaError, match="neither a reference"):
        lab.schemas.register("broken-value", order, "PROTOBUF")  # the import without its reference
