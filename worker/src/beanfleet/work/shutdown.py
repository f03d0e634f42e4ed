"""SIGTERM/SIGINT/SIGHUP handling, rq/Celery style: the handlers only count signals.

First signal: stop taking jobs, finish the current one.  Second signal: give the current
job back at once and exit.  SIGHUP counts like SIGTERM (its default would kill the worker
mid-job): under systemd ``Restart=always`` or supervisor ``autorestart=true`` the manager
starts a fresh process, so SIGHUP is a graceful restart, as Celery and gunicorn users
expect.  The worker loop and its monitor thread read the count; doing the work there (not
in the handler) keeps the handler safe to run at any bytecode.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class ShutdownFlags:
    def __init__(self) -> None:
        self.count = 0
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def stopping(self) -> bool:
        """No new jobs: the current one finishes, then the worker exits."""
        return self.count >= 1

    @property
    def aborting(self) -> bool:
        """Give the current job back now and exit."""
        return self.count >= 2

    def request_stop(self, why: str = "stop requested") -> None:
        """Ask for a graceful stop from code (a handler, a benchmark, a test)."""
        self.count = max(self.count, 1)
        self.signal_name = self.signal_name or why

    def install(self) -> bool:
        """Install the handlers; False (and no change) outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return True

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.signal_name = signal.Signals(signum).name
