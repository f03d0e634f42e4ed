"""Listing buried jobs without kicking them: Admin.buried and ``beanfleet buried``."""

from __future__ import annotations

import json

import greenstalk
import pytest
from admin_helpers import bury, cli, put
from beanfleet.admin import Admin
from beanfleet.errors import UnknownTube
from beanstalkd_server import Beanstalkd


def make_buried(client: greenstalk.Client[bytes]) -> list[int]:
    """Buried jobs in "t", buried in an order unlike their ids, amid other jobs."""
    client.watch("t")
    ids = [put(client, "t", b'{"n": %d}' % n) for n in range(6)]
    put(client, "other", b"other")
    other_buried = put(client, "other", b"other buried")
    put(client, "t", b"stays ready")
    # peek-buried shows the first job buried, here the highest id; a walk upward from it
    # would miss the rest.
    for job_id in (ids[5], ids[1], ids[3], ids[0]):
        bury(client, job_id)
    client.watch("other")
    bury(client, other_buried)
    return sorted([ids[0], ids[1], ids[3], ids[5]])


def test_lists_every_buried_job_of_the_tube_and_leaves_them_buried(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    expected = make_buried(client)
    client.use("t")
    assert client.peek_buried().id == expected[-1]
    kicks_before = client.stats()["cmd-kick"]
    with Admin(beanstalkd.address) as admin:
        listing = admin.buried("t")
    assert [job.id for job in listing.jobs] == expected
    assert listing.buried == 4
    assert [json.loads(job.body) for job in listing.jobs] == [
        {"n": 0},
        {"n": 1},
        {"n": 3},
        {"n": 5},
    ]
    assert all(job.stats["state"] == "buried" for job in listing.jobs)
    assert all(job.stats["buries"] == 1 for job in listing.jobs)
    # Nothing moved.
    assert client.stats()["cmd-kick"] == kicks_before
    assert client.stats_tube("t")["current-jobs-buried"] == 4
    assert all(client.stats_job(i)["state"] == "buried" for i in expected)


def test_limit_and_after_id_page_through(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    expected = make_buried(client)
    seen: list[int] = []
    with Admin(beanstalkd.address) as admin:
        after = 0
        while True:
            listing = admin.buried("t", limit=3, after_id=after)
            seen += [job.id for job in listing.jobs]
            if len(listing.jobs) < 3:
                break
            after = listing.next_id - 1
    assert seen == expected


def test_the_walk_stops_at_the_buried_count(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    job = put(client, "t", b"x")
    client.watch("t")
    bury(client, job)
    client.use("filler")
    for _ in range(5000):
        client.put(b"x")
    before = client.stats()["cmd-stats-job"]
    with Admin(beanstalkd.address) as admin:
        assert [j.id for j in admin.buried("t").jobs] == [job]
    # One batch of ids walked, not all 5001.
    assert client.stats()["cmd-stats-job"] - before == 1000


def test_buried_jobs_restored_from_the_binlog_are_found(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    expected = make_buried(client)
    beanstalkd.kill()
    beanstalkd.start()  # total-jobs starts again at 0; the jobs keep their ids
    with Admin(beanstalkd.address) as admin:
        assert admin.server_stats()["total-jobs"] == 0
        assert [job.id for job in admin.buried("t").jobs] == expected


def test_unknown_tube(beanstalkd: Beanstalkd) -> None:
    with Admin(beanstalkd.address) as admin, pytest.raises(UnknownTube):
        admin.buried("nope")
    code, out, err = cli("buried", "-s", beanstalkd.address, "-t", "nope")
    assert (code, out) == (1, "")
    assert err == f"beanfleet: error: unknown tube 'nope' on {beanstalkd.address}\n"


def test_buried_command_table(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    expected = make_buried(client)
    long_body = put(client, "t", b'{"text": "' + b"y" * 100 + b'"}')
    bury(client, long_body)
    code, out, err = cli("buried", "-s", beanstalkd.address, "-t", "t")
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == [
        "ID",
        "AGE",
        "PRI",
        "RESERVES",
        "TIMEOUTS",
        "BURIES",
        "KICKS",
        "BODY",
    ]
    assert [int(row.split()[0]) for row in rows] == [*expected, long_body]
    assert rows[0].split()[2:7] == [
        "65536",
        "1",
        "0",
        "1",
        "0",
    ]  # greenstalk buries at 2**16
    assert rows[0].endswith('{"n": 0}')
    assert rows[-1].endswith("...")


def test_buried_command_limit_note_and_json(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    expected = make_buried(client)
    code, out, err = cli("buried", "-s", beanstalkd.address, "-t", "t", "--limit", "2")
    assert code == 0
    assert len(out.splitlines()) == 3
    assert err == (f"(listed 2 of 4 buried jobs; continue with --after-id {expected[2] - 1})\n")
    code, out, _ = cli(
        "buried",
        "-s",
        beanstalkd.address,
        "-t",
        "t",
        "--after-id",
        str(expected[1]),
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["tube"] == "t"
    assert data["buried"] == 4
    assert [job["id"] for job in data["jobs"]] == expected[2:]
    assert data["jobs"][0]["body"] == '{"n": 3}'
    assert data["jobs"][0]["stats"]["state"] == "buried"
    assert data["next_after_id"] is None


def test_buried_command_with_none(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    put(client, "t", b"ready")
    code, out, _ = cli("buried", "-s", beanstalkd.address, "-t", "t")
    assert (code, out) == (0, "no buried jobs in tube 't'\n")
