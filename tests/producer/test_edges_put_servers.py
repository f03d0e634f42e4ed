"""Issue 18, the producer's edges with several servers: a share a server refuses goes to the
servers that are up; a bulk put cut off by a crash says which items went in.

Every test here is about failing over to another server, so each runs with two servers
(the one-server edges are test_edges_put.py).  Moved from tests/multi/ (issue 19)."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import greenstalk
import pytest
from beanfleet.errors import ConnectError, JobTooBig, PartialPut
from beanfleet.produce.producer import Producer
from beanfleet.wire.jobref import JobRef
from beanstalkd_server import Beanstalkd, free_port
from put_edges import SignalAfterPuts, line_numbers, ns_in_tube, one_line_error, run_cli
from servers_support import tube_count
from waiting import wait_for

Pair = tuple[Beanstalkd, Beanstalkd]


def _down(kind: str, server: Beanstalkd) -> str:
    """Make ``server`` refuse puts as ``kind`` says; return the address to give."""
    assert server.proc is not None
    if kind == "closed port":
        return f"127.0.0.1:{free_port()}"
    if kind == "draining":
        server.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: _stat(server, "draining") == "true", 10, "the server to drain")
    elif kind == "frozen":
        server.proc.send_signal(signal.SIGSTOP)
    return server.address


def _stat(server: Beanstalkd, name: str) -> Any:
    with greenstalk.Client(server.pair, encoding=None) as client:
        return client.stats()[name]  # type: ignore[literal-required]


@pytest.mark.parametrize("placement", ["spread", "tube"])
@pytest.mark.parametrize("dead_first", [False, True], ids=["dead-second", "dead-first"])
def test_put_stdin_with_a_dead_server_puts_everything_on_the_live_one(
    pair: Pair, placement: str, dead_first: bool
) -> None:
    """Issue 18 item 2: `seq 1000 | ... | beanfleet put --server A,DEAD -` enqueues all 1000
    on A and exits 0: the dead server's share is offered to the server that is up."""
    a, _ = pair
    dead = f"127.0.0.1:{free_port()}"
    servers = f"{dead},{a.address}" if dead_first else f"{a.address},{dead}"
    stdin = "".join(json.dumps({"n": n}) + "\n" for n in range(1, 1001))
    result = run_cli("put", "-s", servers, "--placement", placement, "-t", "t", "-", stdin=stdin)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1000\n", "")
    assert sorted(ns_in_tube(a, "t")) == list(range(1, 1001))


@pytest.mark.parametrize("kind", ["closed port", "draining", "frozen"])
def test_put_many_gives_a_refused_share_to_the_servers_that_are_up(pair: Pair, kind: str) -> None:
    """Issue 18 item 2: a fresh spread producer whose first bulk put meets one server down
    (connection refused, DRAINING, or frozen past the handshake timeout) puts every item on
    the other server, each once, under the id returned for it."""
    a, b = pair
    down = _down(kind, b)
    items = [{"n": n} for n in range(1000)]
    try:
        with Producer(servers=[down, a.address], timeout=1) as producer:
            ids = producer.put_many("t", items, batch_size=64)
    finally:
        assert b.proc is not None
        b.proc.send_signal(signal.SIGCONT)
    assert len(ids) == 1000
    assert {job.server for job in ids if isinstance(job, JobRef)} == {a.address}
    with greenstalk.Client(a.pair, encoding=None) as client:
        assert [json.loads(client.peek(int(job)).body)["n"] for job in ids] == list(range(1000))
    assert sorted(ns_in_tube(a, "t")) == list(range(1000))
    if kind != "closed port":
        assert tube_count(b, "t") == 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["kill9", "frozen"])
@pytest.mark.parametrize("at_least_once", [False, True])
def test_a_server_cut_off_mid_share_leaves_the_rest_to_the_other(
    pair: Pair, sig: int, at_least_once: bool
) -> None:
    """Issue 18 items 2 and 8: a server killed (or frozen past the timeout) in the middle of
    its share: the share's unsent items go to the server that is up; the items whose replies
    were lost are reported maybe inserted (PartialPut) and not put again, unless at-least-once
    was asked for; the call does not wait for a frozen server."""
    a, b = pair
    items = [{"n": n} for n in range(40_000)]
    cutter = SignalAfterPuts(b, 2000, sig)
    outcome: list[Any] = []
    try:
        with Producer(
            servers=[a.address, b.address], timeout=1, at_least_once=at_least_once
        ) as producer:
            producer.put("warm", 0)
            producer.put("warm", 0)  # both links open
            cutter.start()
            thread = threading.Thread(
                target=lambda: outcome.append(_outcome(producer, items)), daemon=True
            )
            thread.start()
            thread.join(15)
            assert outcome, "the bulk put still waits on the cut-off server"
        assert cutter.sent.is_set()
    finally:
        if b.proc is not None:
            b.proc.send_signal(signal.SIGCONT)
    (result,) = outcome
    if at_least_once:
        assert isinstance(result, list) and len(result) == len(items)
        assert all(isinstance(job, JobRef) for job in result)
        return
    assert isinstance(result, PartialPut), result
    assert result.maybe_inserted and not result.not_placed
    assert sorted(result.placed + result.maybe_inserted) == list(range(len(items)))
    assert "maybe inserted" in str(result) and b.address in str(result)
    assert isinstance(result.reason, ConnectError)
    placed_on_a = [i for i in result.placed if result.ids[i].server == a.address]  # type: ignore[union-attr]
    assert tube_count(a, "t") == len(placed_on_a)  # the maybe-inserted ones not put again


def _outcome(producer: Producer, items: list[Any]) -> Any:
    try:
        return producer.put_many("t", items, batch_size=200)
    except PartialPut as exc:
        return exc


def test_put_stdin_with_every_server_lost_names_the_lines_not_enqueued(pair: Pair) -> None:
    """Issue 18 item 2: with one server dead and the other killed mid-batch, `beanfleet put -`
    exits 1 with one line giving the stdin lines enqueued, maybe inserted and not enqueued, so
    a retry of the not-enqueued lines duplicates nothing."""
    a, _ = pair
    dead = f"127.0.0.1:{free_port()}"
    killer = SignalAfterPuts(a, 5000, signal.SIGKILL)
    killer.start()
    stdin = "".join(json.dumps({"n": n}) + "\n" for n in range(1, 60_001))
    started = time.monotonic()
    result = run_cli("put", "-s", f"{a.address},{dead}", "-t", "t", "-", stdin=stdin)
    assert time.monotonic() - started < 30
    killer.join(5)
    assert result.returncode == 1
    error = one_line_error(result.stderr)
    done = re.search(r"(\d+) of 60000 jobs were enqueued \(stdin lines ([-0-9, ]+)\)", error)
    not_done = re.search(r"(\d+) not enqueued \(stdin lines ([-0-9, ]+)\)", error)
    assert done and not_done, error
    assert dead in error and a.address in error
    placed = line_numbers(done.group(2))
    assert len(placed) == int(done.group(1))
    maybe_match = re.search(r"(\d+) maybe inserted \(stdin lines ([-0-9, ]+);", error)
    assert maybe_match, error  # the replies in flight when the server died
    maybe = line_numbers(maybe_match.group(2))
    assert len(placed) + len(maybe) + len(line_numbers(not_done.group(2))) == 60_000
    a.proc = None
    a.start()
    torn: list[bytes] = []
    found = set(ns_in_tube(a, "t", torn))
    assert placed <= found <= placed | maybe
    # A put cut off mid-write by the kill may come back from the binlog with a NUL body
    # (see ns_in_tube): it can only be one whose reply was lost, so it is "maybe inserted".
    assert len(torn) <= len(maybe - found), (len(torn), len(maybe), len(found))


def test_a_server_with_a_smaller_job_limit_met_midway_is_told_as_partial(
    tmp_path: Path,
) -> None:
    """Issue 18 item 2: a bulk put whose items fit one server but not the other either
    enqueues nothing (JobTooBig before any share went in) or raises PartialPut naming the
    share that did go in: no other error leaves jobs behind the caller's back."""
    small = Beanstalkd(binlog_dir=tmp_path / "small", max_job_size=100)
    big = Beanstalkd(binlog_dir=tmp_path / "big")
    small.start()
    big.start()
    try:
        items = [{"n": n, "pad": "x" * 120} for n in range(400)]
        with Producer(servers=[small.address, big.address]) as producer:
            try:
                producer.put_many("t", items)
            except PartialPut as exc:
                assert isinstance(exc.reason, JobTooBig)
                assert exc.placed and not exc.maybe_inserted
                assert tube_count(big, "t") == len(exc.placed)
                assert {job.server for job in exc.ids if isinstance(job, JobRef)} == {big.address}
            except JobTooBig:
                assert tube_count(big, "t") == 0
            else:
                raise AssertionError("a job over the small server's limit went in")
        assert tube_count(small, "t") == 0
    finally:
        small.kill()
        big.kill()
