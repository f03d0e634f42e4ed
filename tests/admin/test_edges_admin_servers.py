"""Issue 18 edges of the admin CLI over a set of real beanstalkd servers, run as real
``beanfleet`` processes: a server frozen or dead, one server spelled two ways.  Where the
behaviour is defined for one server too, the test runs with one and with two (``servers``);
the rest needs a live server beside the failing one."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import greenstalk
import pytest
from admin_helpers import bury_on, put_on, tube_count
from beanstalkd_server import Beanstalkd
from cli_process import run

Pair = tuple[Beanstalkd, Beanstalkd]


@pytest.fixture
def pair(beanstalkd: Beanstalkd, second: Beanstalkd) -> Pair:
    return beanstalkd, second


@pytest.fixture
def live_and_frozen(servers: list[Beanstalkd]) -> Iterator[tuple[list[Beanstalkd], Beanstalkd]]:
    """A buried job in tube t on each server, then the last one stopped (SIGSTOP); the
    others (none with one server) stay live."""
    *live, frozen = servers
    for server in servers:
        bury_on(server, "t")
    assert frozen.proc is not None
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        yield live, frozen
    finally:
        frozen.proc.send_signal(signal.SIGCONT)


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["stats"], "beanstalkd 1."),
        (["peek", "-t", "t", "--buried"], "body:"),
        (["buried", "-t", "t"], "{LIVE}/1"),
        (["kick", "-t", "t", "--count", "5"], "kicked 1 job in tube 't'"),
        (["pause", "-t", "t", "--seconds", "5"], "paused tube 't' for 5s on {LIVE}"),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, list) else None,
)
def test_a_frozen_server_is_named_and_the_live_one_still_shown(
    live_and_frozen: tuple[list[Beanstalkd], Beanstalkd], command: list[str], shown: str
) -> None:
    """Issue 18 item 8: with a server frozen (SIGSTOP) stats, peek, buried, kick and pause
    finish within --timeout, name the frozen one on stderr and exit 1; with a live server
    beside it they show (or act on) the live one too."""
    live, frozen = live_and_frozen
    every = ",".join(server.address for server in [*live, frozen])
    done = run(*command, "-s", every, "--timeout", "1", limit=15)
    assert done.code == 1
    line = done.one_error_line()
    assert frozen.address in line and "no reply" in line
    for server in live:
        assert server.address not in line
        assert shown.replace("{LIVE}", server.address) in done.text
    if not live:
        assert done.out == b""  # nothing answered: nothing that reads as an answer


def test_kick_names_a_dead_server_even_when_the_live_one_had_enough(pair: Pair) -> None:
    """Issue 18 item 16: kick --tube kicks on the live server and, though --count is then
    used up, still reports the dead one (exit 1) instead of saying nothing (exit 0)."""
    live, dead = pair
    bury_on(live, "t")
    dead.kill()
    done = run("kick", "-s", f"{live.address},{dead.address}", "-t", "t", "--count", "1")
    assert done.code == 1
    assert dead.address in done.one_error_line()
    assert done.text.strip() == "kicked 1 job in tube 't'"
    assert tube_count(live, "t") == 1


def test_pause_names_a_dead_server_and_says_where_it_paused(pair: Pair) -> None:
    """Issue 18 item 16: pause with one server dead pauses the live one, says where, and
    names the dead one on stderr (exit 1)."""
    live, dead = pair
    put_on(live, "t", b"{}")
    dead.kill()
    done = run("pause", "-s", f"{dead.address},{live.address}", "-t", "t", "--seconds", "30")
    assert done.code == 1
    assert dead.address in done.one_error_line()
    assert done.text.strip() == f"paused tube 't' for 30s on {live.address}"
    with greenstalk.Client(live.pair) as client:
        assert int(client.stats_tube("t")["pause"]) == 30


def test_buried_with_every_server_down_is_an_error_not_an_empty_list(
    servers: list[Beanstalkd],
) -> None:
    """Issue 18 item 16: buried with every server down prints no "no buried jobs" (that
    would read as all clear): nothing on stdout, every server named, exit 1."""
    for server in servers:
        server.kill()
    done = run("buried", "-s", ",".join(s.address for s in servers), "-t", "t")
    assert done.code == 1 and done.out == b""
    line = done.one_error_line()
    assert all(server.address in line for server in servers)


def test_one_server_spelled_two_ways_counts_once(pair: Pair) -> None:
    """Issue 18 item 16: 127.1 and a port with a leading zero are canonicalised, so such a
    list is refused when it names a server twice, and ids name the server as 127.0.0.1:PORT."""
    a, b = pair
    done = run("stats", "-s", f"{a.address},{b.address},localhost:{a.port}")
    assert done.code == 2
    assert f"{a.address} and localhost:{a.port} are one server" in done.one_error_line()
    bury_on(a, "t")
    done = run("buried", "-s", f"127.1:0{a.port},{b.address}", "-t", "t", "--json")
    assert done.code == 0, done.err
    (job,) = json.loads(done.out)["jobs"]
    assert job["id"] == f"{a.address}/1"
    done = run("kick", "-s", f"127.1:0{a.port},{b.address}", "--job", f"127.0.0.1:0{a.port}/1")
    assert done.code == 0, done.err
    assert done.text.strip() == f"kicked job {a.address}/1"


@pytest.mark.parametrize(
    "command",
    [["stats"], ["peek", "-t", "t"], ["kick", "-t", "t"], ["pause", "-t", "t", "--seconds", "1"]],
    ids="-".join,
)
def test_with_every_server_down_nothing_reads_as_an_answer(
    servers: list[Beanstalkd], command: list[str]
) -> None:
    """Every server down: nothing on stdout (no "kicked 0 jobs", no summary of nothing),
    every server named on stderr, exit 1 - with one server as with two."""
    for server in servers:
        server.kill()
    done = run(*command, "-s", ",".join(s.address for s in servers))
    assert done.code == 1 and done.out == b""
    line = done.one_error_line()
    assert all(server.address in line for server in servers)
