"""A daemon thread of a serving process (the index follower, the ticker) that stops when asked or at exit."""

from __future__ import annotations

import atexit
import threading


class BackgroundThread:
    """Runs `_run` in a daemon thread; `_run` returns soon after `self._stop` is set."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread; it is stopped at interpreter exit."""
        self._thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Ask the thread to stop and wait (30 s at most) for its current step to end."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(30)
