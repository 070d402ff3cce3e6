"""Sample data sets shipped with streamlab.

:func:`clickstream` loads a synthetic e-commerce clickstream (about 20,000 events over three
days from 2026-01-05T00:00Z, ~400 users) that the tutorials and notebooks produce into topics.
The data is generated deterministically by ``data/generate.py`` in the repository and shipped
gzip-compressed inside the package, so it is available from a regular (non-editable) install.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["CLICKSTREAM_COLUMNS", "clickstream"]

CLICKSTREAM_COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts",
    "user",
    "session",
    "event",
    "page",
    "product_id",
    "category",
    "amount",
    "country",
    "device",
)

_STRING_COLUMNS = ("event_id", "user", "session", "event", "page", "category", "country", "device")


def clickstream(n: int | None = None) -> pd.DataFrame:
    """The sample clickstream as a DataFrame, in event-time order.

    ``n`` limits the result to the first ``n`` events (all of them when ``None``).

    Columns and dtypes:

    * ``event_id``, ``user``, ``session``, ``event``, ``page``, ``category``, ``country``,
      ``device``: ``string`` (``category`` is ``<NA>`` for events not about a product);
    * ``ts``: ``datetime64[ns, UTC]``, strictly increasing, millisecond precision;
    * ``product_id``: nullable ``Int64`` (``<NA>`` when no product is involved);
    * ``amount``: ``float64`` in currency units, set only for ``add_to_cart`` (line amount)
      and ``purchase`` (cart total), ``NaN`` otherwise.
    """
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n}")
    source = resources.files("streamlab").joinpath("_data").joinpath("clickstream.csv.gz")
    dtypes: dict[str, str] = {c: "string" for c in _STRING_COLUMNS}
    dtypes |= {"ts": "string", "product_id": "Int64", "amount": "float64"}
    with source.open("rb") as fh:
        df = pd.read_csv(
            fh,
            compression="gzip",
            dtype=dtypes,
            nrows=n,
            keep_default_na=False,
            na_values={"product_id": [""], "category": [""], "amount": [""]},
        )
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601").dt.as_unit("ns")
    return df[list(CLICKSTREAM_COLUMNS)]
