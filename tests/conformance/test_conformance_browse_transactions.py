"""``lab.browse(topic, transactions=True)`` on the embedded broker and over ``kafka://``
against `streamlab serve`: the same records with the same statuses; marker rows only
where markers can be read (embedded: librdkafka hides control records). Not on librdkafka's
mock cluster, whose read_committed consumers get aborted records too (see
test_conformance_transactions)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import streamlab

TIMEOUT = 10.0


@pytest.mark.parametrize("backend", ["embedded", "serve"])
def test_browse_with_transactions_shows_committed_aborted_and_open_records(
    lab: streamlab.Lab, backend: str, make_topic: Callable[..., str], make_name: Callable[[str], str]
) -> None:
    topic = make_topic()
    with lab.producer(transactional_id=make_name("tx")) as txn:
        txn.begin_transaction()
        txn.send(topic, "kept")
        txn.commit_transaction(TIMEOUT)
        txn.begin_transaction()
        txn.send(topic, "dropped")
        txn.flush(TIMEOUT)  # librdkafka's abort drops what was not sent yet
        txn.abort_transaction(TIMEOUT)
    pending = lab.producer(transactional_id=make_name("tx"))
    try:
        pending.begin_transaction()
        pending.send(topic, "pending")
        pending.flush(TIMEOUT)
        page = lab.browse(topic, transactions=True)
        records = page[page["transaction"] != "marker"]
        assert list(zip(records["offset"], records["value"], records["transaction"], strict=True)) == [
            (0, "kept", "committed"), (2, "dropped", "aborted"), (4, "pending", "open"),
        ]  # fmt: skip
        markers = page[page["transaction"] == "marker"]
        if backend == "embedded":
            assert list(zip(markers["offset"], markers["marker"], strict=True)) == [(1, "COMMIT"), (3, "ABORT")]
        else:  # the markers' offsets are gaps over the wire
            assert markers.empty
        assert list(lab.browse(topic)["value"]) == ["kept"]
    finally:
        pending.close()
