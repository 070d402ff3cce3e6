"""What the message browser shows, as a plain object tests drive without a browser.

:class:`MessageBrowserState` holds the controls' values (topic, partitions, start,
``where``, ``search``, page size), the page on screen and the cursors of the pages before
it; every page is one ``lab.browse`` call, so topics of any size page without being read
whole. :meth:`~MessageBrowserState.detail` is one message as the detail pane shows it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from streamlab.errors import StreamlabError
from streamlab.front.browse import TRANSACTION_COLUMNS
from streamlab.front.lab import Lab
from streamlab.model.serde import loads

PAGE_SIZE = 50
META = {"partition", "offset", "timestamp", "key", "value", "headers", "value_error"}
META |= set(TRANSACTION_COLUMNS)  # show_transactions: about the record, not fields of its value


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """One message, ready to show: the value pretty-printed (JSON indented, bytes escaped)."""

    topic: str
    partition: int
    offset: int
    timestamp: str
    key: str
    value: str
    headers: dict[str, str]
    error: str = ""  # why the value is shown as stored (it did not decode), else blank


@dataclass(slots=True)
class MessageBrowserState:
    lab: Lab
    topic: str
    partitions: list[int] | None = None
    start: Any = None  # an offset, -N (the last N of each partition) or a time
    where: str | None = None
    search: str | None = None
    limit: int = PAGE_SIZE
    show_transactions: bool = False  # aborted and open transactions' records and the markers too
    page: pd.DataFrame = field(default_factory=pd.DataFrame)
    error: str | None = None  # the last StreamlabError (say SQL DuckDB refused), shown, not raised
    _cursors: list[tuple[int, int] | None] = field(default_factory=lambda: [None])

    @property
    def page_number(self) -> int:
        """1 for the first page."""
        return len(self._cursors)

    @property
    def has_next(self) -> bool:
        """A full page may have more after it (an empty next page then says so)."""
        return len(self.page) == self.limit

    @property
    def has_previous(self) -> bool:
        return len(self._cursors) > 1

    def apply(self, **changes: Any) -> None:
        """Change the topic or filters (``topic``, ``partitions``, ``start``, ``where``,
        ``search``, ``limit``; blank text is no filter) and show their first page."""
        for name, value in changes.items():
            if name not in ("topic", "partitions", "start", "where", "search", "limit", "show_transactions"):
                raise TypeError(f"unknown browser setting {name!r}")
            setattr(self, name, None if isinstance(value, str) and not value.strip() and name != "topic" else value)
        self._cursors = [None]
        self.refresh()

    def refresh(self) -> None:
        """Read the current page again (new records show on the last page)."""
        self._load(self._cursors[-1])

    def next_page(self) -> bool:
        """Show the page after this one; False (staying here) when this one is the last."""
        if self.page.empty:
            return False
        cursor = (int(self.page["partition"].iloc[-1]), int(self.page["offset"].iloc[-1]))
        before = self.page
        self._cursors.append(cursor)
        self._load(cursor)
        if self.page.empty and self.error is None:
            self._cursors.pop()
            self.page = before
            return False
        return True

    def previous_page(self) -> bool:
        if not self.has_previous:
            return False
        self._cursors.pop()
        self._load(self._cursors[-1])
        return True

    def _load(self, cursor: tuple[int, int] | None) -> None:
        try:
            self.page = self.lab.browse(self.topic, where=self.where, search=self.search, start=self.start,
                                        partitions=self.partitions, limit=self.limit, after=cursor,
                                        transactions=self.show_transactions)  # fmt: skip
            self.error = None
        except StreamlabError as exc:
            self.page = pd.DataFrame()
            self.error = f"{type(exc).__name__}: {exc}"

    def export(self) -> pd.DataFrame:
        """The page on screen as a DataFrame of its own (``lab.browse``'s columns)."""
        return self.page.copy()

    def table(self) -> pd.DataFrame:
        """The page as the grid shows it: one text cell per field (JSON for objects, escapes
        for bytes, integral numbers without ".0", blanks for missing) beside the numeric
        partition and offset, and without the stored value when fields are spread from it."""
        page = self.page
        if page.empty:
            return pd.DataFrame({"partition": [], "offset": []})
        spread = "value" in page.columns and bool(set(page.columns) - META)  # fields stand for the value
        shown = page.drop(columns=[c for c in ("value",) if spread] + [c for c in ("headers",) if c in page.columns])
        out = pd.DataFrame({"partition": shown["partition"].astype(int), "offset": shown["offset"].astype(int)})
        out["timestamp"] = [_time(t) for t in shown["timestamp"]]
        for column in shown.columns[3:]:
            out[str(column)] = [_cell(v) for v in shown[column]]
        if "headers" in page.columns and any(page["headers"]):
            out["headers"] = [", ".join(f"{k}={_text(v)}" for k, v in h.items()) for h in page["headers"]]
        return out

    def detail(self, row: int) -> MessageDetail:
        """Message ``row`` of the page (0-based, in page order)."""
        record = self.page.iloc[row]
        return MessageDetail(
            topic=self.topic,
            partition=int(record["partition"]),
            offset=int(record["offset"]),
            timestamp=_time(record["timestamp"]),
            key=_pretty(record.get("key")),
            value=_pretty(_value(record)),
            headers={str(k): _text(v) for k, v in (record.get("headers") or {}).items()},
            error="" if _missing(record.get("value_error")) else str(record["value_error"]),
        )

    def summary(self) -> str:
        if self.error:
            return f"{self.topic}: {self.error}"
        filters = [f"where {self.where}"] if self.where else []
        filters += [f"search {self.search!r}"] if self.search else []
        more = ", more on the next page" if self.has_next else ""
        shown = "no matching records" if self.page.empty else (
            f"{len(self.page)} record(s), partition {int(self.page['partition'].iloc[0])} offset "
            f"{int(self.page['offset'].iloc[0])} to partition {int(self.page['partition'].iloc[-1])} offset "
            f"{int(self.page['offset'].iloc[-1])}"
        )  # fmt: skip
        return f"{self.topic} page {self.page_number}: {shown}{more}" + (f" ({'; '.join(filters)})" if filters else "")


def _value(record: pd.Series) -> Any:
    """The value as stored: the text of JSON values (``browse`` keeps it), else the fields."""
    fields = _nested({str(k): _plain(v) for k, v in record.items() if k not in META and not _missing(v)})
    if "value" in record.index:
        value = record["value"]
        if isinstance(value, bytes) and fields:  # decoded through the Schema Registry: its fields
            return fields
        if isinstance(value, str):
            try:
                return loads(value)
            except ValueError:
                return value
        return value
    return fields


def _nested(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as the record had them: nested records that replay flattened into dotted
    names (``ship_to.city``) nested again, so the detail pane shows the decoded record."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        *path, last = name.split(".")
        inner = out
        for part in path:
            found = inner.setdefault(part, {})
            if not isinstance(found, dict):  # a field really named with a dot: keep the name
                inner, last = out, name
                break
            inner = found
        inner[last] = value
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _pretty(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _text(value: Any) -> str:
    if isinstance(value, bytes):  # UTF-8 where it is, escapes for the rest and for control bytes
        text = value.decode("utf-8", errors="backslashreplace")
        return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)
    return "" if value is None else str(value)


def _cell(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an int field with blanks arrives as float: 2566, not 2566.0
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return _text(_plain(value))


def _time(value: Any) -> str:
    return "" if _missing(value) else pd.Timestamp(value).isoformat(timespec="milliseconds")
