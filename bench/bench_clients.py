"""Baseline workers, one process each, that the benchmarks set next to ``beanfleet work``.

    python bench/bench_clients.py KIND --server H:P --tube TUBE [--handler M:F] [--max-jobs N]

KIND is one of

``greenstalk``
    the plain greenstalk loop: ``reserve()`` then ``delete(job)``, one round trip each, no
    decoding, no handler call.  The yardstick of figure 1.
``greenstalk-json``
    the same loop doing what a worker must do per job: ``json.loads`` of the body and a
    handler call between ``reserve()`` and ``delete()`` (like-for-like with a real worker).
``article``
    the worker of the reference article (beanstalkc, 2016), rewritten here: a beanstalkc
    ``Connection``, ``watch`` the tube and ``ignore('default')``, signal handlers that clear
    a ``running`` flag, then per job ``reserve(timeout=1)`` (errors swallowed), ``json.loads``
    of the body, the handler, ``job.delete()``, and ``bury()`` when the handler raises.
``pipelined``
    a bare-socket ceiling: ``delete`` of the finished job in the same write as the next
    ``reserve-with-timeout``, ``json.loads`` and the handler in between.  Not a product;
    it shows how much a Python client can get from one connection on this machine.
``prefetch``
    the bare-socket loop with a second reserve always in flight, so beanstalkd answers the
    next reserve while the handler runs (the process holds two jobs at a time).  Not what a
    worker should do by default (a held job waits, its TTR running); it shows what
    overlapping client and server work would buy.

With ``--max-jobs N`` each exits after N jobs, like ``beanfleet work --max-jobs N``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from typing import Any


def load_handler(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def parse_server(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def run_greenstalk(server: str, tube: str, handler: Callable[..., Any], max_jobs: int) -> int:
    import greenstalk

    client = greenstalk.Client(parse_server(server), watch=tube)
    done = 0
    while done < max_jobs:
        job = client.reserve()
        client.delete(job)
        done += 1
    client.close()
    return done


def run_greenstalk_json(server: str, tube: str, handler: Callable[..., Any], max_jobs: int) -> int:
    import greenstalk

    client = greenstalk.Client(parse_server(server), encoding=None, watch=tube)
    done = 0
    while done < max_jobs:
        job = client.reserve()
        handler(json.loads(job.body), job)
        client.delete(job)
        done += 1
    client.close()
    return done


class ArticleWorker:
    """The article's QueueWorker, same steps per job, written against beanstalkc3."""

    def __init__(self, server: str) -> None:
        import beanstalkc

        host, port = parse_server(server)
        self.conn = beanstalkc.Connection(host, port)
        self.running = True
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def stop(self, signum: int, frame: object) -> None:
        self.running = False

    def reserve_one(self, timeout: int = 1) -> Any:
        try:
            return self.conn.reserve(timeout=timeout)
        except Exception:
            return None

    def handle(self, job: Any, handler: Callable[..., Any]) -> bool:
        try:
            handler(json.loads(job.body))
            job.delete()
            return True
        except Exception as exc:
            print(f"job failed: {exc}", file=sys.stderr)
            job.bury()
            return False

    def run(self, tube: str, handler: Callable[..., Any], max_jobs: int) -> int:
        self.conn.watch(tube)
        self.conn.ignore("default")
        done = 0
        while self.running and done < max_jobs:
            job = self.reserve_one(timeout=1)
            if job is not None:
                self.handle(job, handler)
                done += 1
        self.conn.close()
        return done


def watching_socket(server: str, tube: str) -> tuple[socket.socket, io.BufferedReader]:
    """A bare connection that watches only ``tube``: the set-up of both bare-socket loops,
    outside their timed part."""
    sock = socket.create_connection(parse_server(server))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")
    sock.sendall(b"watch %s\r\nignore default\r\n" % tube.encode())
    f.readline()
    f.readline()
    return sock, f


def run_pipelined(server: str, tube: str, handler: Callable[..., Any], max_jobs: int) -> int:
    sock, f = watching_socket(server, tube)
    done = 0
    pending = b""
    while done < max_jobs:
        sock.sendall(pending + b"reserve-with-timeout 1\r\n")
        if pending:
            f.readline()  # DELETED
        line = f.readline()
        if not line.startswith(b"RESERVED"):
            pending = b""
            continue
        _, jid, size = line.split()
        body = f.read(int(size) + 2)[:-2]
        handler(json.loads(body))
        pending = b"delete %s\r\n" % jid
        done += 1
    sock.sendall(pending)
    f.readline()
    sock.close()
    return done


def run_prefetch(server: str, tube: str, handler: Callable[..., Any], max_jobs: int) -> int:
    """The bare-socket loop with one more reserve always in flight: while the handler
    runs, beanstalkd already answers the next reserve (the worker holds 2 jobs)."""
    sock, f = watching_socket(server, tube)
    reserve = b"reserve-with-timeout 1\r\n"
    asked = min(2, max_jobs)
    sock.sendall(reserve * asked)
    pending = deque(b"R" * asked)  # replies still to come, in order: R(eserve), D(elete)
    done = 0
    while pending:
        kind = pending.popleft()
        line = f.readline()
        if kind == ord("D"):
            continue
        if not line.startswith(b"RESERVED"):  # TIMED_OUT: ask again
            sock.sendall(reserve)
            pending.append(ord("R"))
            continue
        _, jid, size = line.split()
        body = f.read(int(size) + 2)[:-2]
        handler(json.loads(body), None)
        done += 1
        more = asked < max_jobs
        sock.sendall(b"delete %s\r\n%s" % (jid, reserve if more else b""))
        pending.append(ord("D"))
        if more:
            pending.append(ord("R"))
            asked += 1
    sock.close()
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "kind",
        choices=["greenstalk", "greenstalk-json", "article", "pipelined", "prefetch"],
    )
    ap.add_argument("--server", required=True)
    ap.add_argument("--tube", required=True)
    ap.add_argument("--handler", default="bench_handlers:noop")
    ap.add_argument("--max-jobs", type=int, default=sys.maxsize)
    args = ap.parse_args(argv)
    handler = load_handler(args.handler)
    if args.kind == "greenstalk":
        run_greenstalk(args.server, args.tube, handler, args.max_jobs)
    elif args.kind == "greenstalk-json":
        run_greenstalk_json(args.server, args.tube, handler, args.max_jobs)
    elif args.kind == "article":
        ArticleWorker(args.server).run(args.tube, handler, args.max_jobs)
    elif args.kind == "prefetch":
        run_prefetch(args.server, args.tube, handler, args.max_jobs)
    else:
        run_pipelined(args.server, args.tube, handler, args.max_jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
