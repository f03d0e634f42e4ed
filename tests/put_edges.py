"""Helpers for the producer edge tests: the real ``beanfleet`` process, and a server that is
killed or frozen once a number of puts have reached it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import greenstalk
from beanstalkd_server import Beanstalkd

_SCRIPT = Path(sys.executable).with_name("beanfleet")
BEANFLEET = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "import sys; from beanfleet.cli import main; sys.exit(main())"]
)


def run_cli(*args: str, stdin: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``beanfleet ARGS`` as a process, stdin given, output captured as text."""
    env = {k: v for k, v in os.environ.items() if k != "BEANFLEET_SERVER"}
    return subprocess.run(
        [*BEANFLEET, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def one_line_error(stderr: str) -> str:
    """The single ``beanfleet: error:`` line of ``stderr`` (asserting there is no more)."""
    assert "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("beanfleet: error: "), stderr
    return stderr


class SignalAfterPuts(threading.Thread):
    """Sends ``sig`` to ``server`` once its ``cmd-put`` count reaches ``count``."""

    def __init__(self, server: Beanstalkd, count: int, sig: int, timeout: float = 30) -> None:
        super().__init__(daemon=True)
        self.server, self.count, self.sig, self.timeout = server, count, sig, timeout
        self.puts_seen = 0
        self.sent = threading.Event()

    def run(self) -> None:
        assert self.server.proc is not None
        deadline = time.monotonic() + self.timeout
        with greenstalk.Client(self.server.pair, encoding=None) as client:
            while time.monotonic() < deadline:
                self.puts_seen = int(client.stats()["cmd-put"])
                if self.puts_seen >= self.count:
                    self.server.proc.send_signal(self.sig)
                    self.sent.set()
                    return
