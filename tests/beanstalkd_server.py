"""A real beanstalkd process for tests, benchmarks and drills: free port, binlog in a temp dir."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Beanstalkd:
    """Starts, kills and restarts one beanstalkd on 127.0.0.1 with the same port and binlog."""

    def __init__(
        self,
        binlog_dir: Path | None,
        port: int | None = None,
        fsync_ms: int | None = None,
        max_job_size: int | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.binary = shutil.which("beanstalkd") or "/usr/bin/beanstalkd"
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.binlog_dir = binlog_dir
        self.fsync_ms = fsync_ms
        self.max_job_size = max_job_size
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pair(self) -> tuple[str, int]:
        return (self.host, self.port)

    def argv(self) -> list[str]:
        argv = [self.binary, "-l", self.host, "-p", str(self.port)]
        if self.binlog_dir is not None:
            self.binlog_dir.mkdir(parents=True, exist_ok=True)
            argv += ["-b", str(self.binlog_dir)]
        if self.fsync_ms is not None:
            argv += ["-f", str(self.fsync_ms)]
        if self.max_job_size is not None:
            argv += ["-z", str(self.max_job_size)]
        return argv + self.extra

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it listens."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"beanstalkd exited with {self.proc.returncode}{self.exit_detail()}"
                )
            try:
                socket.create_connection(self.pair, timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"beanstalkd did not listen on {self.address} in {timeout}s")

    # The two hooks the drills' server overrides to keep beanstalkd's stderr in a file.
    def spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL)

    def exit_detail(self) -> str:
        """What to add to the error when beanstalkd exits at start."""
        return ""

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """kill -9: no chance to flush anything beyond what the binlog already holds."""
        self._signal(signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP: a hung host (a paused VM, a stopped container): connections stay open,
        nothing is answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT, if it is still running (a no-op when it was never frozen)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Frozen (SIGSTOP) for the ``with`` block; thawed (SIGCONT) on the way out, whatever
        happened in it."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None
