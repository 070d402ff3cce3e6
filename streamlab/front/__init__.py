"""The front: one ``Lab`` written once over the backend port (:mod:`streamlab.port`), with
what only the front does (shaping replays into pandas, checking user SQL)."""
