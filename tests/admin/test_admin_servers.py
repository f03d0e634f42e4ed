"""The admin commands over a set of servers: the same tests with one server and with two
(one server is a set of one, not another path), and the few that need two servers."""

from __future__ import annotations

import json

import greenstalk
from admin_helpers import bury_on, cli, peek_body, put_on, tube_count
from beanstalkd_server import Beanstalkd


def test_stats_buried_kick_and_pause_span_every_server(servers: list[Beanstalkd]) -> None:
    """Each server holds one ready and one buried job in t: stats counts them all, buried
    lists them all (SERVER/ID with two servers, the bare id with one), kick --count 10
    kicks them all, pause pauses t everywhere."""
    every = ",".join(server.address for server in servers)
    for server in servers:
        put_on(server, "t", b"{}")
        bury_on(server, "t")
    n = len(servers)
    code, out, _ = cli("stats", "-s", every, "--json")
    assert code == 0, out
    stats = json.loads(out)
    tube = next(t for t in stats["tubes"] if t["name"] == "t")
    assert (tube["ready"], tube["buried"]) == (n, n)
    if n > 1:
        assert set(tube["servers"]) == {s.address for s in servers}
    else:
        assert set(stats) == {"server", "tubes"} and "servers" not in tube
    code, out, _ = cli("buried", "-s", every, "-t", "t")
    assert code == 0
    ids = [row.split()[0] for row in out.splitlines()[1:]]
    assert ids == ([f"{s.address}/2" for s in servers] if n > 1 else ["2"])
    code, out, _ = cli("kick", "-s", every, "-t", "t", "--count", "10")
    assert code == 0 and out.strip() == f"kicked {n} job{'s' if n > 1 else ''} in tube 't'"
    assert all(tube_count(server, "t") == 2 for server in servers)
    code, out, _ = cli("pause", "-s", every, "-t", "t", "--seconds", "30")
    assert (code, out) == (0, "paused tube 't' for 30s\n")
    for server in servers:
        with greenstalk.Client(server.pair) as client:
            assert int(client.stats_tube("t")["pause"]) == 30


def test_peek_over_every_server_shows_the_most_urgent(servers: list[Beanstalkd]) -> None:
    """peek --tube shows the job the next reserve would get if the servers were one: the
    most urgent one, from whichever server holds it."""
    every = ",".join(server.address for server in servers)
    for n, server in enumerate(servers):
        with greenstalk.Client(server.pair, encoding=None, use="t") as client:
            client.put(b'"low %d"' % n, priority=5000)
    with greenstalk.Client(servers[-1].pair, encoding=None, use="t") as client:
        urgent = client.put(b'"urgent"', priority=1)
    code, out, err = cli("peek", "-s", every, "-t", "t", "--json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown["body"] == '"urgent"'
    if len(servers) > 1:
        assert shown["id"] == f"{servers[-1].address}/{urgent}"
        assert shown["server"] == servers[-1].address
    else:
        assert shown["id"] == urgent and "server" not in shown
    code, _, err = cli("peek", "-s", every, "-t", "t", "--buried")
    where = " on any server" if len(servers) > 1 else ""
    assert (code, err) == (1, f"beanfleet: error: no buried job in tube 't'{where}\n")


def test_a_tube_no_server_knows_is_an_error(servers: list[Beanstalkd]) -> None:
    """Unknown everywhere: exit 1, nothing on stdout; one server's own message, or one
    naming every server."""
    every = ",".join(server.address for server in servers)
    expected = (
        f"unknown tube 'nope' on every server ({every.replace(',', ', ')})"
        if len(servers) > 1
        else f"unknown tube 'nope' on {every}"
    )
    for command in (["stats", "-t", "nope"], ["buried", "-t", "nope"], ["kick", "-t", "nope"],
                    ["pause", "-t", "nope", "--seconds", "1"], ["peek", "-t", "nope"]):  # fmt: skip
        assert cli(*command, "-s", every) == (1, "", f"beanfleet: error: {expected}\n"), command


def test_colliding_ids_peek_delete_and_kick_the_named_server(
    beanstalkd: Beanstalkd, second: Beanstalkd
) -> None:
    """Two servers only: job 1 exists on each, so a bare id is ambiguous and SERVER/ID
    names one of them."""
    a, b = beanstalkd, second
    assert put_on(a, "t", b'"on a"') == 1
    assert put_on(b, "t", b'"on b"') == 1  # job 1 on each
    both = f"{a.address},{b.address}"
    code, out, _ = cli("peek", "-s", both, "--job", f"{b.address}/1", "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["id"] == f"{b.address}/1" and shown["body"] == '"on b"'
    code, _, err = cli("delete", "-s", a.address, "-s", b.address, "--job", "1")
    assert code == 2 and "ambiguous" in err and err.count("\n") == 1
    code, out, _ = cli("delete", "-s", both, "--job", f"{a.address}/1")
    assert code == 0 and out.strip() == f"deleted job {a.address}/1"
    assert peek_body(a, 1) is None and peek_body(b, 1) == b'"on b"'
    code, out, _ = cli("put", "-s", both, "-t", "t", '{"x": 1}')
    assert code == 0 and "/" in out  # SERVER/ID once there are several servers


def test_a_dead_server_is_named_and_the_others_still_shown(
    beanstalkd: Beanstalkd, second: Beanstalkd
) -> None:
    """Two servers only (one must stay up to be shown): the dead one is named on stderr
    (exit 1) and the live one's summary and tube rows, with the summed row, are shown."""
    a, b = beanstalkd, second
    put_on(b, "t", b"{}")
    a.kill()
    code, out, err = cli("stats", "-s", f"{a.address},{b.address}")
    assert code == 1
    assert a.address in err and "beanfleet: error:" in err
    assert "beanstalkd 1." in out or b.address in out
    assert "all" in out  # the summed row of tube t from the live server


def test_stats_of_a_tube_only_some_servers_have(beanstalkd: Beanstalkd, second: Beanstalkd) -> None:
    """Two servers only: a tube unknown to one of them counts as empty there; that server
    is said not to know it (not "unreachable"), in JSON too (this used to be a KeyError)."""
    put_on(beanstalkd, "t", b"{}")
    both = f"{beanstalkd.address},{second.address}"
    code, out, err = cli("stats", "-s", both, "-t", "t", "--json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown["servers"][second.address] == {"error": f"unknown tube 't' on {second.address}"}
    assert [(t["name"], t["ready"]) for t in shown["tubes"]] == [("t", 1)]
    code, out, err = cli("stats", "-s", both, "-t", "t")
    assert (code, err) == (0, "")
    assert f"unknown tube 't' on {second.address}" in out.split("\n\n")[1]
    assert "unreachable" not in out
