"""Helpers for the producer edge tests: the real ``beanfleet`` process, a server that is
killed or frozen once a number of puts have reached it, and what a tube holds afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import greenstalk
from beanstalkd_server import Beanstalkd
from cli_process import run


def run_cli(*args: str, stdin: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``beanfleet ARGS`` as a process (``cli_process.run``), stdin given, output as text
    (``text=True``'s universal newlines), without the environment's BEANFLEET_SERVER."""
    env = {k: v for k, v in os.environ.items() if k != "BEANFLEET_SERVER"}
    ran = run(*args, limit=timeout, stdin=stdin.encode(), env=env)
    return subprocess.CompletedProcess(list(args), ran.code, _text(ran.text), _text(ran.err))


def _text(output: str) -> str:
    return output.replace("\r\n", "\n").replace("\r", "\n")


def ns_in_tube(server: Beanstalkd, tube: str, torn: list[bytes] | None = None) -> list[int]:
    """The "n" of every ready job in ``tube`` (reserving and deleting them all).

    Read with raw commands, not greenstalk (which asserts on a malformed chunk): after a
    kill -9, beanstalkd 1.12 can replay a put that was cut off mid-write with its body all
    NUL bytes (the record's space was written, its bytes were not).  Such bodies go to
    ``torn`` when it is given; otherwise they fail the test."""
    seen: list[int] = []
    with socket.create_connection(server.pair, timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b"watch %s\r\n" % tube.encode())
        reader.readline()
        while True:
            sock.sendall(b"reserve-with-timeout 0\r\n")
            head = reader.readline().split()
            if head[0] != b"RESERVED":
                assert head[0] == b"TIMED_OUT", head
                return seen
            body = reader.read(int(head[2]) + 2)[:-2]
            sock.sendall(b"delete %s\r\n" % head[1])
            reader.readline()
            if torn is not None and body.strip(b"\0") == b"":
                torn.append(body)
                continue
            seen.append(json.loads(body)["n"])


def line_numbers(text: str) -> set[int]:
    """'1-3, 7' -> {1, 2, 3, 7}."""
    numbers: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        numbers.update(range(int(low), int(high or low) + 1))
    return numbers


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
