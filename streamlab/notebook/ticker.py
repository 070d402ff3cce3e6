"""The background refresh behind every live widget: :class:`Ticker` calls a function every
few seconds in a daemon thread, and every ticker still running is stopped at exit.

Apart from the state objects because it is about threads, not about what a Lab holds.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable

from streamlab.errors import ClosedError

__all__ = ["Ticker"]


class Ticker:
    """Calls ``fn`` every ``interval`` seconds in a daemon thread until :meth:`stop`.

    An exception from ``fn`` goes to ``on_error``; ticking goes on unless the broker is
    closed (then there is nothing left to show) or ``on_error`` returns False.
    """

    def __init__(
        self,
        fn: Callable[[], None],
        interval: float,
        *,
        name: str = "streamlab-ticker",
        on_error: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self.fn, self.interval, self.name, self.on_error = fn, interval, name, on_error
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        _tickers.add(self)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.fn()
            except Exception as exc:
                self.error = exc
                keep_going = self.on_error(exc) if self.on_error else True
                if isinstance(exc, ClosedError) or not keep_going:
                    return

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


_tickers: weakref.WeakSet[Ticker] = weakref.WeakSet()


@atexit.register
def _stop_tickers() -> None:
    """Stop every ticker before the interpreter (or kernel) shuts down under them."""
    for ticker in list(_tickers):
        ticker.stop(timeout=1)
