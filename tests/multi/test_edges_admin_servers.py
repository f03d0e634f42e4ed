"""Issue 18 edges of the admin CLI over two real beanstalkd servers, run as real
``beanfleet`` processes: one server frozen or dead, one server spelled two ways."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import greenstalk
import pytest
from beanstalkd_server import Beanstalkd
from cli_process import run
from multi_support import put_direct, tube_count

Pair = tuple[Beanstalkd, Beanstalkd]


def bury_one(server: Beanstalkd, tube: str, body: bytes = b"{}") -> int:
    job_id = put_direct(server, tube, body)
    with greenstalk.Client(server.pair, encoding=None, watch=tube) as client:
        client.bury(client.reserve_job(job_id))
    return job_id


@pytest.fixture
def live_and_frozen(pair: Pair) -> Iterator[Pair]:
    """A buried job in tube t on each server, then the second one stopped (SIGSTOP)."""
    live, frozen = pair
    for server in pair:
        bury_one(server, "t")
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
    live_and_frozen: Pair, command: list[str], shown: str
) -> None:
    """Issue 18 item 8: with one of two servers frozen (SIGSTOP) stats, peek, buried, kick
    and pause finish within --timeout, show (or act on) the live server, name the frozen
    one on stderr and exit 1."""
    live, frozen = live_and_frozen
    done = run(*command, "-s", f"{live.address},{frozen.address}", "--timeout", "1", limit=15)
    assert done.code == 1
    line = done.one_error_line()
    assert frozen.address in line and live.address not in line and "no reply" in line
    assert shown.replace("{LIVE}", live.address) in done.text


def test_kick_names_a_dead_server_even_when_the_live_one_had_enough(pair: Pair) -> None:
    """Issue 18 item 16: kick --tube kicks on the live server and, though --count is then
    used up, still reports the dead one (exit 1) instead of saying nothing (exit 0)."""
    live, dead = pair
    bury_one(live, "t")
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
    put_direct(live, "t", b"{}")
    dead.kill()
    done = run("pause", "-s", f"{dead.address},{live.address}", "-t", "t", "--seconds", "30")
    assert done.code == 1
    assert dead.address in done.one_error_line()
    assert done.text.strip() == f"paused tube 't' for 30s on {live.address}"
    with greenstalk.Client(live.pair) as client:
        assert int(client.stats_tube("t")["pause"]) == 30


def test_buried_with_every_server_down_is_an_error_not_an_empty_list(pair: Pair) -> None:
    """Issue 18 item 16: buried with every server down prints no "no buried jobs" (that
    would read as all clear): nothing on stdout, both servers named, exit 1."""
    for server in pair:
        server.kill()
    done = run("buried", "-s", ",".join(s.address for s in pair), "-t", "t")
    assert done.code == 1 and done.out == b""
    line = done.one_error_line()
    assert all(server.address in line for server in pair)


def test_one_server_spelled_two_ways_counts_once(pair: Pair) -> None:
    """Issue 18 item 16: 127.1 and a port with a leading zero are canonicalised, so such a
    list is refused when it names a server twice, and ids name the server as 127.0.0.1:PORT."""
    a, b = pair
    done = run("stats", "-s", f"{a.address},{b.address},localhost:{a.port}")
    assert done.code == 2
    assert f"{a.address} and localhost:{a.port} are one server" in done.one_error_line()
    bury_one(a, "t")
    done = run("buried", "-s", f"127.1:0{a.port},{b.address}", "-t", "t", "--json")
    assert done.code == 0, done.err
    (job,) = json.loads(done.out)["jobs"]
    assert job["id"] == f"{a.address}/1"
    done = run("kick", "-s", f"127.1:0{a.port},{b.address}", "--job", f"127.0.0.1:0{a.port}/1")
    assert done.code == 0, done.err
    assert done.text.strip() == f"kicked job {a.address}/1"
