"""The shipped sample clickstream: shape, dtypes, determinism and basic realism."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from streamlab import datasets

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "data" / "generate.py"
REPO_CSV = ROOT / "data" / "clickstream.csv"


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return datasets.clickstream()


def _shipped_gz() -> bytes:
    return resources.files("streamlab").joinpath("_data").joinpath("clickstream.csv.gz").read_bytes()


def test_shape(df: pd.DataFrame) -> None:
    assert 18_000 <= len(df) <= 22_000
    assert tuple(df.columns) == datasets.CLICKSTREAM_COLUMNS
    assert df["event_id"].is_unique
    assert df["event_id"].iloc[0] == "ev-000001"
    assert 300 <= df["user"].nunique() <= 400
    assert REPO_CSV.stat().st_size < 2_100_000


def test_head(df: pd.DataFrame) -> None:
    head = datasets.clickstream(100)
    assert len(head) == 100
    pd.testing.assert_frame_equal(head, df.head(100))
    assert len(datasets.clickstream(0)) == 0
    with pytest.raises(ValueError):
        datasets.clickstream(-1)


def test_dtypes(df: pd.DataFrame) -> None:
    ts = df["ts"].dtype
    assert isinstance(ts, pd.DatetimeTZDtype)
    assert str(ts.tz) == "UTC"
    assert df["amount"].dtype == "float64"
    assert df["product_id"].dtype == "Int64"
    for col in ("event_id", "user", "session", "event", "page", "category", "country", "device"):
        assert df[col].dtype == "string", col


def test_values(df: pd.DataFrame) -> None:
    assert df["ts"].iloc[0] >= pd.Timestamp("2026-01-05T00:00:00Z")
    assert df["ts"].iloc[-1] < pd.Timestamp("2026-01-08T00:00:00Z")
    assert df["ts"].is_monotonic_increasing and df["ts"].is_unique
    assert set(df["event"]) == {
        "page_view",
        "search",
        "add_to_cart",
        "remove_from_cart",
        "checkout",
        "purchase",
    }
    assert set(df["device"]) == {"mobile", "desktop", "tablet"}
    with_amount = df["event"].isin(["add_to_cart", "purchase"])
    assert df.loc[with_amount, "amount"].notna().all()
    assert df.loc[~with_amount, "amount"].isna().all()
    assert (df.loc[with_amount, "amount"] > 0).all()
    # Product pages carry their product id.
    product_pages = df["page"].str.startswith("/product/")
    assert (df.loc[product_pages, "page"].str.removeprefix("/product/").astype("Int64")).equals(
        df.loc[product_pages, "product_id"]
    )
    assert df.loc[df["event"] == "search", "page"].str.startswith("/search?q=").all()


def test_sessions_break_after_30_minutes_of_inactivity(df: pd.DataFrame) -> None:
    by_user = df.sort_values(["user", "ts"])
    same_user = by_user["user"].eq(by_user["user"].shift())
    gap = by_user["ts"].diff()
    new_session = ~same_user | (gap > pd.Timedelta(minutes=30))
    assert (by_user["session"].ne(by_user["session"].shift()) == new_session).all()
    assert df.groupby("session")["user"].nunique().eq(1).all()


def test_funnel(df: pd.DataFrame) -> None:
    counts = df["event"].value_counts()
    assert 0 < counts["purchase"] <= counts["checkout"] <= counts["add_to_cart"] < counts["page_view"]
    assert counts["remove_from_cart"] < counts["add_to_cart"]


def test_user_skew(df: pd.DataFrame) -> None:
    per_user = df["user"].value_counts()
    top = per_user.head(max(1, len(per_user) // 10))
    assert top.sum() / len(df) > 0.30


def test_daily_cycle(df: pd.DataFrame) -> None:
    hourly = df.set_index("ts").resample("1h").size()
    assert len(hourly) == 72
    assert hourly.max() > 4 * hourly.min()


def test_shipped_gzip_matches_repo_csv() -> None:
    gz = _shipped_gz()
    assert gz[4:8] == b"\0\0\0\0"  # zero mtime: reproducible archive
    assert gzip.decompress(gz) == REPO_CSV.read_bytes()


@pytest.mark.integration  # the generator in a subprocess
def test_generator_is_deterministic(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh = (tmp_path / "clickstream.csv").read_bytes()
    assert hashlib.sha256(fresh).hexdigest() == hashlib.sha256(REPO_CSV.read_bytes()).hexdigest()
    assert gzip.decompress((tmp_path / "clickstream.csv.gz").read_bytes()) == fresh
