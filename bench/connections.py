"""What idle connections cost a beanstalkd, and what it does at its file-descriptor limit.

``python bench/connections.py [--counts 1000,2000] [--nofile 256]`` starts its own
beanstalkd (binlog off) and prints the measurements docs/connections.md quotes:

1. memory per idle connection: RSS of beanstalkd (and the kernel's TCP memory from
   /proc/net/sockstat) before and after opening N connections, each as a worker holds it
   (``watch`` a tube, then a ``reserve-with-timeout`` outstanding);
2. the fd limit: a beanstalkd started under ``prlimit --nofile=LIMIT``, then more
   connections than that opened: how many are served, whether the process lives, how
   much CPU it burns meanwhile, whether the first connections still work, and whether a
   new connection is served once some are closed.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from beanstalkd_server import Beanstalkd
from bench_common import cpu_seconds, rss_kib

TUBE = "conn-test"


def slab_kib() -> int:
    """The kernel's slab memory (socket, inode, epoll objects live there), machine-wide."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return 0


def connect(srv: Beanstalkd, timeout: float = 2.0) -> socket.socket:
    sock = socket.create_connection(srv.pair, timeout=timeout)
    return sock


def ask(sock: socket.socket, command: bytes, timeout: float = 2.0) -> bytes:
    """Send one command, read one reply line (b"" if none came within ``timeout``)."""
    sock.settimeout(timeout)
    try:
        sock.sendall(command)
        return sock.recv(200)
    except (TimeoutError, OSError):
        return b""


def as_worker(sock: socket.socket) -> None:
    """What an idle worker's connection looks like: the tube watched, a reserve waiting."""
    if not ask(sock, b"watch %s\r\n" % TUBE.encode()).startswith(b"WATCHING"):
        raise RuntimeError("watch failed")
    sock.sendall(b"reserve-with-timeout 600\r\n")


@contextlib.contextmanager
def started(
    srv: Beanstalkd, nofile: int | None = None, stderr: IO[bytes] | None = None
) -> Iterator[Beanstalkd]:
    if nofile is not None:
        argv = ["prlimit", f"--nofile={nofile}", *srv.argv()]
        srv.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(srv.pair, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    else:
        srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def memory(counts: list[int]) -> list[str]:
    """beanstalkd's RSS (and the kernel's slab) per idle worker connection."""
    out = []
    srv = Beanstalkd(binlog_dir=None)
    with started(srv):
        assert srv.proc is not None
        pid = srv.proc.pid
        time.sleep(0.2)
        base_rss, base_slab = rss_kib(pid), slab_kib()
        out.append(f"beanstalkd idle, no clients: RSS {base_rss} KiB")
        socks: list[socket.socket] = []
        try:
            for n in counts:
                while len(socks) < n:
                    s = connect(srv)
                    as_worker(s)
                    socks.append(s)
                time.sleep(0.5)
                rss, slab = rss_kib(pid), slab_kib()
                out.append(
                    f"{n} idle worker connections: RSS {rss} KiB "
                    f"(+{(rss - base_rss) / n:.2f} KiB per connection); kernel slab "
                    f"+{(slab - base_slab) / (2 * n):.2f} KiB per socket (both ends are on "
                    "this machine: 2 sockets per connection; machine-wide, so noisy)"
                )
        finally:
            for s in socks:
                s.close()
    return out


def fd_limit(limit: int, extra: int = 44) -> list[str]:
    """Open ``limit + extra`` connections to a beanstalkd limited to ``limit`` fds."""
    out = [f"beanstalkd under prlimit --nofile={limit}, opening {limit + extra} connections:"]
    srv = Beanstalkd(binlog_dir=None)
    # A file, not a pipe: a full pipe would block beanstalkd.
    with tempfile.TemporaryFile() as log:
        with started(srv, nofile=limit, stderr=log):
            assert srv.proc is not None
            pid = srv.proc.pid
            socks: list[socket.socket] = []
            refused = served = 0
            silent: list[socket.socket] = []
            over = over_for = 0.0  # when the first connection was left waiting; for how long
            try:
                for _ in range(limit + extra):
                    try:
                        s = connect(srv)
                    except OSError:
                        refused += 1
                        continue
                    socks.append(s)
                    reply = ask(s, b"list-tubes-watched\r\n", timeout=0.5)
                    if reply.startswith(b"OK"):
                        served += 1
                    else:
                        silent.append(s)
                        over = over or time.monotonic()
                out.append(
                    f"  connect() succeeded {len(socks)}, refused {refused}; answered {served}, "
                    f"no reply within 0.5 s: {len(silent)}"
                )
                c0, t0 = cpu_seconds(pid), time.monotonic()
                time.sleep(2.0)
                busy = 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
                out.append(
                    f"  beanstalkd alive: {srv.proc.poll() is None}; its CPU while over the "
                    f"limit: {busy:.0f} % of a core"
                )
                first = ask(socks[0], b"stats\r\n", timeout=1.0)
                out.append(f"  an accepted connection still served: {first.startswith(b'OK')}")
                for s in socks[:20]:
                    s.close()
                if silent:
                    # Its command was sent before: the reply comes once beanstalkd accepts it.
                    silent[0].settimeout(2.0)
                    try:
                        late = silent[0].recv(200)
                    except (TimeoutError, OSError):
                        late = b""
                    out.append(
                        "  after closing 20 served connections, the first one left waiting is "
                        f"served: {late.startswith(b'OK')}"
                    )
            finally:
                for s in socks:
                    with contextlib.suppress(OSError):
                        s.close()
                over_for = time.monotonic() - over if over else 0.0
                time.sleep(0.2)
            out.append(f"  beanstalkd alive at the end: {srv.proc.poll() is None}")
        log.seek(0)
        err = log.read().decode(errors="replace").strip().splitlines()
    if err:
        out.append(
            f"  beanstalkd stderr: {len(err)} lines in about {over_for:.1f} s over the limit, "
            f"e.g. {sorted(set(err))[0]!r}"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1000,2000")
    ap.add_argument("--nofile", type=int, default=256)
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.counts.split(",")]
    with open("/proc/sys/net/core/somaxconn") as f:
        print(f"net.core.somaxconn = {f.read().strip()}")
    print("\n".join(memory(counts)))
    print("\n".join(fd_limit(args.nofile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
