"""``lab.browse(topic, transactions=True)``: what read_committed readers do not see, shown
to learners: records of aborted and open transactions with their status, and the markers
as rows at the offsets they take."""

from __future__ import annotations

import pytest

import streamlab

TIMEOUT = 10.0


def text(cell: object) -> str | None:
    return cell if isinstance(cell, str) else None  # NA on marker rows


def three_transactions(lab: streamlab.Lab, topic: str) -> streamlab.api.Producer:
    """Offsets: 0 plain, 1-2 committed + COMMIT at 3, 4-5 aborted + ABORT at 6, 7 open.
    Returns the producer whose transaction is still open (the caller closes it)."""
    with lab.producer() as plain:
        plain.send(topic, "plain").result(TIMEOUT)
    with lab.producer(transactional_id="browse-a") as txn:
        txn.begin_transaction()
        txn.send(topic, "kept-1")
        txn.send(topic, "kept-2")
        txn.commit_transaction(TIMEOUT)
        txn.begin_transaction()
        txn.send(topic, "dropped-1")
        txn.send(topic, "dropped-2")
        txn.abort_transaction(TIMEOUT)
    pending = lab.producer(transactional_id="browse-b")
    pending.begin_transaction()
    pending.send(topic, "pending")
    pending.flush(TIMEOUT)
    return pending


def test_browse_shows_statuses_and_markers(lab: streamlab.Lab, make_topic) -> None:
    topic = make_topic()
    pending = three_transactions(lab, topic)
    try:
        page = lab.browse(topic, transactions=True)
        rows = list(zip(page["offset"], page["value"], page["transaction"], page["marker"], strict=True))
        assert [(o, text(v), t, text(m)) for o, v, t, m in rows] == [
            (0, "plain", "committed", None),
            (1, "kept-1", "committed", None),
            (2, "kept-2", "committed", None),
            (3, None, "marker", "COMMIT"),
            (4, "dropped-1", "aborted", None),
            (5, "dropped-2", "aborted", None),
            (6, None, "marker", "ABORT"),
            (7, "pending", "open", None),
        ]
        markers = page[page["transaction"] == "marker"]
        assert markers["producer_id"].notna().all() and (markers["producer_id"] >= 0).all()
        assert markers["producer_epoch"].notna().all()
        assert page.loc[page["offset"] == 7, "producer_id"].notna().all()
        # the default page is what a read_committed consumer gets, without the new columns
        default = lab.browse(topic)
        assert list(default["value"]) == ["plain", "kept-1", "kept-2"]
        assert "transaction" not in default.columns
        # paging continues through the markers
        first = lab.browse(topic, transactions=True, limit=4)
        assert list(first["offset"]) == [0, 1, 2, 3]
        rest = lab.browse(topic, transactions=True, after=(0, 3))
        assert list(rest["offset"]) == [4, 5, 6, 7]
        assert list(lab.browse(topic, transactions=True, where="transaction = 'aborted'")["offset"]) == [4, 5]
    finally:
        pending.close()


@pytest.mark.integration  # a kafka:// Lab on lab.serve()
def test_kafka_browse_shows_aborted_and_open_records_without_markers(lab: streamlab.Lab, make_topic) -> None:
    """Over ``kafka://`` (against this lab served) the same statuses, from comparing a
    read_uncommitted and a read_committed read; the markers' offsets are gaps."""
    topic = make_topic()
    pending = three_transactions(lab, topic)
    remote = streamlab.connect(f"kafka://{lab.serve()}")
    try:
        page = remote.browse(topic, transactions=True)
        assert list(zip(page["offset"], page["value"], page["transaction"], strict=True)) == [
            (0, "plain", "committed"),
            (1, "kept-1", "committed"),
            (2, "kept-2", "committed"),
            (4, "dropped-1", "aborted"),
            (5, "dropped-2", "aborted"),
            (7, "pending", "open"),
        ]
        embedded = lab.browse(topic, transactions=True)
        records = embedded[embedded["transaction"] != "marker"]
        assert list(records["transaction"]) == list(page["transaction"])
        assert list(remote.browse(topic)["value"]) == ["plain", "kept-1", "kept-2"]
    finally:
        remote.close()
        pending.close()


def test_tail_and_browser_show_transactions(lab: streamlab.Lab, make_topic) -> None:
    from streamlab.notebook.browser_state import MessageBrowserState
    from streamlab.notebook.topic_state import TailState
    from streamlab.notebook.topic_widgets import LiveTail

    topic = make_topic()
    pending = three_transactions(lab, topic)
    tail = TailState(lab, topic, per_partition=10, show_transactions=True)
    widget = LiveTail(lab, topic, per_partition=10, autostart=False, show_transactions=True)
    try:
        tail.refresh()
        shown = tail.newest()[0]
        assert [(r.offset, r.value, tail.transaction(r)) for r in shown] == [
            (0, "plain", "committed"), (1, "kept-1", "committed"), (2, "kept-2", "committed"),
            (4, "dropped-1", "aborted"), (5, "dropped-2", "aborted"), (7, "pending", "open"),
        ]  # fmt: skip
        assert [(o, kind) for o, kind, _, _ in tail.markers(0)] == [(3, "COMMIT"), (6, "ABORT")]
        summary = tail.summary()
        assert "COMMIT marker" in summary and "ABORT marker" in summary and "[aborted]" in summary
        widget.refresh()
        assert "ABORT marker" in widget.body.value and "aborted" in widget.body.value
        browser = MessageBrowserState(lab, topic, show_transactions=True)
        browser.refresh()
        table = browser.table()
        assert list(table["transaction"]) == ["committed"] * 3 + ["marker", "aborted", "aborted", "marker", "open"]
        assert "value" in table.columns  # the status columns are not fields spread from the value
    finally:
        tail.close()
        widget.stop()
        pending.close()


def test_each_partition_of_a_transaction_gets_its_marker(lab: streamlab.Lab, make_topic) -> None:
    topic = make_topic(partitions=2)
    with lab.producer(transactional_id="browse-c") as txn:
        txn.begin_transaction()
        txn.send(topic, "p0", partition=0)
        txn.send(topic, "p1", partition=1)
        txn.abort_transaction(TIMEOUT)
    page = lab.browse(topic, transactions=True)
    assert [(p, o, t, text(m)) for p, o, t, m in zip(page["partition"], page["offset"], page["transaction"],
                                                      page["marker"], strict=True)] == [
        (0, 0, "aborted", None), (0, 1, "marker", "ABORT"), (1, 0, "aborted", None), (1, 1, "marker", "ABORT"),
    ]  # fmt: skip
    assert lab.browse(topic).empty
