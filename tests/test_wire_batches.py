"""The raw-batch store (storage/wire_batches.py) on real files: what survives a reopen,
torn and damaged entries, offsets a crash took from the log, and retention."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamlab.protocol.batch_encoding import encode_batch
from streamlab.protocol.batch_layout import rebase
from streamlab.protocol.record_batch import WireRecord
from streamlab.storage.wire_batches import WireBatchStore

Opener = Callable[..., WireBatchStore]


@pytest.fixture
def store_at() -> Iterator[Opener]:
    """Opens stores (as a log's open would) and closes them after the test."""
    opened: list[WireBatchStore] = []

    def open_store(folder: Path, *, valid_below: int = 1 << 40, roll_bytes: int = 1 << 24) -> WireBatchStore:
        opened.append(WireBatchStore(folder, valid_below=valid_below, roll_bytes=roll_bytes))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


def batch(n: int, text: str = "v") -> bytes:
    records = [WireRecord(i, 1_750_000_000_000 + i, None, f"{text} {i}".encode()) for i in range(n)]
    return encode_batch(records, compression="gzip", producer_id=3, producer_epoch=0, base_sequence=0)


def big_batch(size: int, text: str) -> bytes:
    """One uncompressed record of ``size`` bytes: batches over 64 KiB are served from a mapping."""
    value = (text * size).encode()
    return encode_batch([WireRecord(0, 1_750_000_000_000, None, value)], compression="none",
                        producer_id=3, producer_epoch=0, base_sequence=0)  # fmt: skip


def stored(store: WireBatchStore) -> list[tuple[int, int, bytes | None]]:
    out, offset = [], 0
    while (entry := store.at_or_after(offset)) is not None:
        out.append((entry.base, entry.last, store.read(entry)))
        offset = entry.last + 1
    return out


def files(folder: Path) -> list[str]:
    """The .batches files, each checked to have its index beside it."""
    names = sorted(p.name for p in folder.glob("wire-*"))
    batches = [name for name in names if name.endswith(".batches")]
    assert names == sorted([*batches, *(name.replace(".batches", ".index") for name in batches)])
    return batches


def fill(store_at: Opener, folder: Path, **kwargs: int) -> tuple[WireBatchStore, list[bytes]]:
    store = store_at(folder, **kwargs)
    sent = [batch(3, "a"), batch(5, "b"), batch(2, "c")]
    for base, data in zip((0, 3, 8), sent, strict=True):
        store.keep(base, data)
    return store, [rebase(data, base, partition_leader_epoch=0) for base, data in zip((0, 3, 8), sent, strict=True)]


def test_batches_come_back_with_their_offsets_written_in_and_after_a_reopen(tmp_path: Path, store_at: Opener) -> None:
    store, want = fill(store_at, tmp_path)
    assert stored(store) == [(0, 2, want[0]), (3, 7, want[1]), (8, 9, want[2])]
    entry = store.at_or_after(5)
    assert entry is not None and (entry.base, entry.last, entry.count) == (3, 7, 5)
    assert store.at_or_after(10) is None
    first = store.at_or_after(0)
    assert first is not None
    assert [data for _, data in store.read_run(first, end=10, max_bytes=1 << 20)] == want  # one read
    assert [e.base for e, _ in store.read_run(first, end=8, max_bytes=1 << 20)] == [0, 3]  # below end
    assert [e.base for e, _ in store.read_run(first, end=10, max_bytes=len(want[0]) + len(want[1]))] == [0, 3]
    assert [e.base for e, _ in store.read_run(first, end=10, max_bytes=0)] == [0]  # the first whatever its size
    store.keep(9, batch(1))  # offsets already held: never stored twice
    assert stored(store_at(tmp_path)) == stored(store)


@pytest.mark.parametrize("torn", ["index", "batches"])
def test_a_torn_tail_is_cut_and_appending_goes_on(tmp_path: Path, store_at: Opener, torn: str) -> None:
    store, _ = fill(store_at, tmp_path)
    (path,) = tmp_path.glob(f"wire-*.{torn}")
    whole = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\x00" * 20)  # half an index entry, or a batch's first bytes: a write a crash cut short
    reopened = store_at(tmp_path)
    assert stored(reopened) == stored(store)
    assert path.stat().st_size == whole
    reopened.keep(10, batch(4))
    assert [e[:2] for e in stored(store_at(tmp_path))] == [(0, 2), (3, 7), (8, 9), (10, 13)]


def test_an_entry_pointing_past_the_batches_written_ends_what_is_read(tmp_path: Path, store_at: Opener) -> None:
    """Nothing is fsynced: after a crash the index may hold an entry whose batch never
    reached the disk."""
    _, want = fill(store_at, tmp_path)
    (path,) = tmp_path.glob("wire-*.batches")
    with path.open("r+b") as f:
        f.truncate(len(want[0]) + len(want[1]) + 10)
    reopened = store_at(tmp_path)
    assert [e[:2] for e in stored(reopened)] == [(0, 2), (3, 7)]
    reopened.keep(8, batch(2))
    assert [e[:2] for e in stored(store_at(tmp_path))] == [(0, 2), (3, 7), (8, 9)]


def test_entries_past_the_logs_recovered_end_are_dropped(tmp_path: Path, store_at: Opener) -> None:
    """After a crash the log may hold fewer offsets than this store had: those offsets are
    appended again, with other records, so their kept batches must go."""
    fill(store_at, tmp_path)
    reopened = store_at(tmp_path, valid_below=8)
    assert [e[:2] for e in stored(reopened)] == [(0, 2), (3, 7)]
    again = batch(2, "new")
    reopened.keep(8, again)
    assert stored(reopened)[-1] == (8, 9, rebase(again, 8, partition_leader_epoch=0))


def test_a_damaged_index_entry_ends_what_is_read(tmp_path: Path, store_at: Opener) -> None:
    """The entry's CRC guards the offsets and length the batch's own CRC does not cover:
    a flipped bit never makes a batch claim other offsets."""
    fill(store_at, tmp_path)
    (path,) = tmp_path.glob("wire-*.index")
    data = bytearray(path.read_bytes())
    data[32 + 7] ^= 0x01  # the second entry's base offset
    path.write_bytes(bytes(data))
    assert [e[:2] for e in stored(store_at(tmp_path))] == [(0, 2)]


@pytest.mark.parametrize("size", [100, 300_000], ids=["read", "mapped"])
def test_a_damaged_batch_is_never_read(
    tmp_path: Path, store_at: Opener, caplog: pytest.LogCaptureFixture, size: int
) -> None:
    sent = [big_batch(size, text) for text in "abc"]
    store = store_at(tmp_path)
    for base, data in zip((0, 1, 2), sent, strict=True):
        store.keep(base, data)
    want = [rebase(data, base, partition_leader_epoch=0) for base, data in enumerate(sent)]
    assert stored(store) == [(0, 0, want[0]), (1, 1, want[1]), (2, 2, want[2])]
    first = store.at_or_after(0)
    assert first is not None
    assert bytes(store.read_run(first, end=3, max_bytes=1 << 30).data) == b"".join(want)
    (path,) = tmp_path.glob("wire-*.batches")
    with path.open("r+b") as f:  # a byte of the second batch's value, flipped under the open store
        f.seek(len(want[0]) + len(want[1]) - 10)
        byte = f.read(1)[0]
        f.seek(-1, 1)
        f.write(bytes([byte ^ 0x40]))
    with caplog.at_level(logging.WARNING, "streamlab.storage"):
        assert [e.base for e, _ in store.read_run(first, end=3, max_bytes=1 << 30)] == [0]  # stops before it
        assert stored(store) == [(0, 0, want[0]), (1, 1, None), (2, 2, want[2])]
        assert stored(store) == [(0, 0, want[0]), (1, 1, None), (2, 2, want[2])]
    assert len([r for r in caplog.records if "fails its checks" in r.message]) == 1


def test_files_wholly_below_the_log_start_are_removed(tmp_path: Path, store_at: Opener) -> None:
    store, _ = fill(store_at, tmp_path, roll_bytes=1)  # a file per batch
    assert files(tmp_path) == [f"wire-{base:020d}.batches" for base in (0, 3, 8)]
    store.drop_below(5)  # inside the second: it stays
    assert files(tmp_path) == [f"wire-{base:020d}.batches" for base in (3, 8)]
    assert [e[:2] for e in stored(store)] == [(3, 7), (8, 9)]
    store.drop_below(10)
    assert files(tmp_path) == [] and stored(store) == []
    store.keep(10, batch(1))
    assert files(tmp_path) == ["wire-00000000000000000010.batches"]


def test_files_below_the_log_start_go_before_anything_is_read(tmp_path: Path, store_at: Opener) -> None:
    """Retention on open drops files by name, without reading the store in."""
    fill(store_at, tmp_path, roll_bytes=1)
    untouched = store_at(tmp_path)
    untouched.drop_below(8)  # the file from 3 ends where the one from 8 begins
    assert files(tmp_path) == [f"wire-{base:020d}.batches" for base in (8,)]
    assert [e[:2] for e in stored(untouched)] == [(8, 9)]
