"""The message browser: its state object and its widget, driven without a browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import streamlab
from streamlab.notebook.browser import MessageBrowser
from streamlab.notebook.browser_state import MessageBrowserState


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[streamlab.Lab]:
    with streamlab.connect(tmp_path) as opened:
        opened.create_topic("orders", partitions=2)
        opened.create_topic("raw")
        with opened.producer() as p:
            for i in range(30):
                value = {
                    "amount": i,
                    "page": "home" if i % 3 == 0 else "cart",
                    "product_id": 2566 if i % 4 == 0 else None,
                }
                p.send("orders", value=value, key=f"user-{i}", partition=i % 2, headers={"trace": f"t-{i}"})
            p.send("raw", value=b"\x00\xffbytes", key=b"\x01")
            p.send("raw", value="text", key=None)
        yield opened


def test_state_pages_filters_and_comes_back(lab: streamlab.Lab) -> None:
    state = MessageBrowserState(lab, "orders", limit=4)
    state.apply(where="amount > 20", search="")
    assert state.search is None  # blank text is no filter
    seen = [state.page[["partition", "offset"]].values.tolist()]
    assert state.summary() == "orders page 1: 4 record(s), partition 0 offset 11 to partition 0 offset 14, " \
        "more on the next page (where amount > 20)"  # fmt: skip
    while state.next_page():
        seen.append(state.page[["partition", "offset"]].values.tolist())
    assert [len(page) for page in seen] == [4, 4, 1]
    assert state.page_number == 3 and not state.has_next and not state.next_page()
    expected = lab.browse("orders", where="amount > 20", limit=100)
    assert [row for page in seen for row in page] == expected[["partition", "offset"]].values.tolist()
    assert state.previous_page() and state.page_number == 2
    assert state.export()[["partition", "offset"]].values.tolist() == seen[1]
    state.apply(where="amount >")
    assert state.page.empty and state.error is not None and state.error.startswith("QueryError: Parser Error")
    assert state.summary().startswith("orders: QueryError")


def test_state_table_and_detail_show_messages_as_sent(lab: streamlab.Lab) -> None:
    state = MessageBrowserState(lab, "orders", partitions=[0], start=-2)
    state.refresh()
    table = state.table()
    assert list(table.columns) == ["partition", "offset", "timestamp", "key", "amount", "page", "product_id", "headers"]
    assert table["offset"].tolist() == [13, 14]
    assert table["product_id"].tolist() == ["", "2566"]  # not "2566.0", blank not <NA>
    assert table["headers"].tolist() == ["trace=t-26", "trace=t-28"]
    detail = state.detail(1)
    assert (detail.partition, detail.offset, detail.key, detail.headers) == (0, 14, "user-28", {"trace": "t-28"})
    assert detail.value == '{\n  "amount": 28,\n  "page": "cart",\n  "product_id": 2566\n}'
    assert pd.Timestamp(detail.timestamp) == state.page["timestamp"].iloc[1]
    raw = MessageBrowserState(lab, "raw")
    raw.refresh()
    assert raw.table()["value"].tolist() == ["\\x00\\xffbytes", "text"]
    assert raw.detail(0).value == "\\x00\\xffbytes" and raw.detail(0).key == "\\x01" and raw.detail(1).key == ""


def test_widget_controls_grid_and_detail_pane(lab: streamlab.Lab) -> None:
    browser = MessageBrowser(lab, "orders", limit=5)
    assert list(browser.topic.options) == ["orders", "raw"]
    assert browser.previous_button.disabled and not browser.next_button.disabled
    browser.where.value = "page = 'home'"
    browser.search.value = "USER-1"  # user-12, user-15, user-18
    browser.apply_button.click()
    assert browser.state.table()["key"].tolist() == ["user-12", "user-18", "user-15"]
    assert browser.grid.df is not None and browser.grid.df["key"].tolist() == ["user-12", "user-18", "user-15"]
    assert browser.next_button.disabled and "3 record(s)" in browser.status.value
    browser.grid.selected_rows = [2]
    assert "user-15" in browser.detail.value and "&quot;amount&quot;: 15" in browser.detail.value
    assert "t-15" in browser.detail.value
    browser.where.value, browser.search.value = "", ""
    browser.apply_button.click()
    assert "select a row" in browser.detail.value and browser.state.page_number == 1
    browser.next_button.click()
    assert browser.state.page_number == 2 and not browser.previous_button.disabled
    assert browser.export()["offset"].tolist() == [5, 6, 7, 8, 9]
    browser.partitions.value = "0,x"  # a box applies when Enter syncs it, without the button
    assert "partitions are numbers" in browser.status.value
    browser.partitions.value = ""
    browser.where.value = "page = 'cart'"
    assert browser.export()["value"].str.contains('"page":"cart"').all() and "where page" in browser.summary()
    browser.where.value = ""
    browser.topic.value = "raw"  # a new topic shows its first page at once
    assert browser.export()["offset"].tolist() == [0, 1] and browser.summary().startswith("raw page 1")


def test_a_displayed_browser_has_a_stable_text_beside_its_widgets(lab: streamlab.Lab) -> None:
    browser = MessageBrowser(lab, "orders", limit=5)
    bundle = browser._repr_mimebundle_()  # what Jupyter stores: nbval compares the text, not the view's repr
    assert bundle["text/plain"] == "<streamlab.widgets.MessageBrowser topic='orders'>"
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == browser.view.model_id


def test_avro_values_show_decoded_through_the_registry(lab: streamlab.Lab) -> None:
    pytest.importorskip("fastavro")
    schema = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"},
                                                             {"name": "city", "type": "string"}]}  # fmt: skip
    sid = lab.schemas.register("avro-orders-value", schema)
    lab.create_topic("avro-orders")
    with lab.producer() as p:
        for i, city in enumerate(["Oslo", "Rome"]):
            p.send("avro-orders", value=lab.schemas.encode({"id": i, "city": city}, sid), key=f"o{i}")
    page = lab.browse("avro-orders", search="o1")
    assert page["city"].tolist() == ["Rome"] and isinstance(page["value"].iloc[0], bytes)  # the stored bytes too
    state = MessageBrowserState(lab, "avro-orders")
    state.refresh()
    assert state.table()[["key", "id", "city"]].values.tolist() == [["o0", "0", "Oslo"], ["o1", "1", "Rome"]]
    assert state.detail(1).value == '{\n  "id": 1,\n  "city": "Rome"\n}'
