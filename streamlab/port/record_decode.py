"""A consumer's hook for decoding what it polls beyond streamlab's own serialisation: the
front (``Lab.consumer``) hands one in (:class:`streamlab.front.record_formats.TopicFormatDecoder`
decodes Confluent-framed keys and values through ``lab.schemas``), so consumers never import
the front nor know about a Schema Registry.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from streamlab.model.types import Record


class RecordDecoder(Protocol):
    def records(self, records: list[Record]) -> list[Record]:
        """``records`` with keys and values decoded (what does not decode stays as it is)."""

    def frame(self, frame: pd.DataFrame, *, raw: bool) -> pd.DataFrame:
        """A ``poll_frame`` frame with its values decoded, shaped as ``lab.replay`` shapes them."""
