"""Named crash points for fault-injection tests.

A test starts a child process with ``STREAMLAB_CRASH_AT=<point>``; when the storage code
reaches that point the process kills itself with SIGKILL, exactly as ``kill -9`` would at
that instant. Without the variable every point is a no-op (one comparison with None).

The points, in the order each operation passes them:

* ``seal.before-rename``, ``seal.before-index``, ``seal.before-unlink-active``
* ``compact.before-commit``, ``compact.after-commit``
* ``retention.after-commit``
* ``delete-topic.after-commit`` (the catalog forgot the topic; its files are still there)
"""

from __future__ import annotations

import os
import signal

_CRASH_AT = os.environ.get("STREAMLAB_CRASH_AT") or None


def crash_point(name: str) -> None:
    if _CRASH_AT is not None and name == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)
