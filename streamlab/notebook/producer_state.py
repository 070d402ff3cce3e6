"""What the producer panel shows and does: :class:`ProducerPanelState` sends records by
hand or replays a dataset at a steady rate in a background thread.

The one state that writes to a Lab, so it stands apart from the views that read it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import pandas as pd

from streamlab.errors import StreamlabError
from streamlab.front.lab import Lab
from streamlab.model.types import RecordMetadata
from streamlab.notebook.state_helpers import num, short

__all__ = ["ProducerPanelState", "Sent"]


@dataclass(frozen=True, slots=True)
class Sent:
    partition: int
    offset: int
    timestamp: int
    key: Any
    value: Any


def _json_rows(data: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(data.to_json(orient="records", date_format="iso", date_unit="ms"))
    return rows


class ProducerPanelState:
    """Send one record by hand, or run a generator replaying a dataset at ``rate`` records
    per second in a background thread; keeps where the last records went."""

    def __init__(self, lab: Lab, topic: str, *, keep: int = 10, **producer_config: Any) -> None:
        self.lab, self.topic = lab, topic
        self.producer_config = producer_config
        self.sent: deque[Sent] = deque(maxlen=keep)
        self.by_hand = 0
        self.generated = 0
        self.target: int | None = None
        self.rate = 0.0
        self.error: str | None = None
        self._producer: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def producer(self) -> Any:
        with self._lock:
            if self._producer is None:
                self._producer = self.lab.producer(**self.producer_config)
            return self._producer

    @property
    def last(self) -> Sent | None:
        return self.sent[-1] if self.sent else None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _record(self, md: RecordMetadata, key: Any, value: Any) -> Sent:
        sent = Sent(md.partition, md.offset, md.timestamp, key, value)
        self.sent.append(sent)
        return sent

    def send(
        self,
        value: Any,
        key: Any = None,
        headers: dict[str, str] | None = None,
        *,
        partition: int | None = None,
        timestamp: Any = None,
        timeout: float = 10,
    ) -> Sent:
        md = self.producer.send(self.topic, value=value, key=key, headers=headers, partition=partition,
                                timestamp=timestamp).result(timeout=timeout)  # fmt: skip
        self.by_hand += 1
        return self._record(md, key, value)

    def send_text(self, value: str, key: str = "", headers: str = "") -> Sent:
        """What the panel's text boxes hold: the value is JSON if it parses, else text;
        headers are a JSON object; an empty key means no key."""
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        heads = json.loads(headers) if headers.strip() else None
        if heads is not None and not isinstance(heads, dict):
            raise StreamlabError(f"headers must be a JSON object, got {headers!r}")
        return self.send(parsed, key or None, {str(k): str(v) for k, v in (heads or {}).items()})

    def start(
        self,
        rate: float = 10.0,
        *,
        data: pd.DataFrame | None = None,
        key: str | None = "user",
        timestamp: str | None = None,
        limit: int | None = None,
    ) -> None:
        """Replay ``data`` (default: :func:`streamlab.datasets.clickstream`) into the topic
        at ``rate`` records per second, keyed by column ``key``, stamped with column
        ``timestamp`` (None: the time of sending), stopping after ``limit`` records."""
        if rate <= 0:
            raise StreamlabError(f"rate must be positive, got {rate}")
        self.stop()
        if data is None:
            from streamlab.datasets import clickstream

            data = clickstream(limit)
        rows = _json_rows(data if limit is None else data.head(limit))
        self.rate, self.generated, self.target, self.error = rate, 0, len(rows), None
        self._stop.clear()
        self._thread = threading.Thread(target=self._generate, args=(rows, rate, key, timestamp),
                                        name=f"streamlab-generator-{self.topic}", daemon=True)  # fmt: skip
        self._thread.start()

    def _generate(self, rows: list[dict[str, Any]], rate: float, key: str | None, ts: str | None) -> None:
        producer, began, i = self.producer, time.monotonic(), 0
        try:
            while i < len(rows) and not self._stop.is_set():
                due = min(len(rows), int((time.monotonic() - began) * rate) + 1)
                last = None
                for row in rows[i:due]:
                    k = row.pop(key, None) if key else None
                    stamp = row.pop(ts, None) if ts else None
                    last = (producer.send(self.topic, value=row, key=k, timestamp=stamp), k, row)
                if last is not None:
                    self._record(last[0].result(timeout=30), last[1], last[2])
                self.generated += due - i
                i = due
                self._stop.wait(min(0.1, max(0.0, began + i / rate - time.monotonic())))
        except Exception as exc:
            self.error = f"generator stopped: {exc}"

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait for the generator to finish; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            if self._producer is not None:
                self._producer.close()
                self._producer = None

    def summary(self) -> str:
        status = "running" if self.running else "stopped"
        if self.target is not None:
            status += f", {num(self.generated)} of {num(self.target)} generated at {self.rate:g} records/s"
        lines = [f"producer for {self.topic}: {self.by_hand} sent by hand; generator {status}"]
        if self.error:
            lines.append(f"  error: {self.error}")
        if self.last is not None:
            s = self.last
            lines.append(f"  last sent: partition {s.partition}, offset {num(s.offset)}, key {short(s.key, 20)}")
        return "\n".join(lines)
