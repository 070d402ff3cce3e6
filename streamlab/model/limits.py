"""Size rules every path that stores or sends records shares."""

from __future__ import annotations

# Per-record overhead Kafka counts on top of key and value bytes (record batch v2 framing).
RECORD_OVERHEAD = 70
