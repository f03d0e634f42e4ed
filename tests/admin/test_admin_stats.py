"""Tube stats and the next/oldest ready ages, through Admin and ``beanfleet stats``."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import greenstalk
import pytest
from admin_helpers import bury, cli, put
from beanfleet.admin import Admin
from beanfleet.errors import ConnectError, UnknownTube
from beanstalkd_server import Beanstalkd, free_port

_SCRIPT = Path(sys.executable).with_name("beanfleet")
BEANFLEET = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "import sys; from beanfleet.cli import main; sys.exit(main())"]
)


def by_name(admin: Admin) -> dict[str, object]:
    return {t.name: t for t in admin.tube_stats()}


def test_tube_counts(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    for priority in (10, 1024, 2000):
        put(client, "work", b"{}", priority)
    client.use("work")
    client.put(b"{}", delay=100)
    reserved = put(client, "work", b"{}")
    buried = put(client, "work", b"{}")
    client.watch("work")
    bury(client, buried)
    client.reserve_job(reserved)
    client.pause_tube("work", 50)
    with Admin(beanstalkd.address) as admin:
        (work,) = admin.tube_stats(["work"])
    assert (work.ready, work.reserved, work.delayed, work.buried) == (3, 1, 1, 1)
    assert work.urgent == 1
    assert work.total == 6
    assert work.watching == 1
    assert work.paused
    assert 45 <= work.pause_time_left <= 50


def test_next_and_oldest_ready_differ_when_an_old_job_waits_at_low_priority(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    old = put(client, "t", b"old", priority=5000)
    new = put(client, "t", b"new", priority=0)

    def ages() -> tuple[int, int]:
        return int(client.stats_job(new)["age"]), int(client.stats_job(old)["age"])

    before = ages()
    with Admin(beanstalkd.address) as admin:
        (t,) = admin.tube_stats(["t"])
    after = ages()
    assert (t.next_ready_id, t.oldest_ready_id) == (new, old)
    # The ages are beanstalkd's own for those two jobs (read between two reads of ours).
    assert t.next_ready_age is not None and t.oldest_ready_age is not None
    assert before[0] <= t.next_ready_age <= after[0]
    assert before[1] <= t.oldest_ready_age <= after[1]
    assert t.oldest_ready_exact


def test_oldest_ready_skips_jobs_that_are_not_ready_or_in_other_tubes(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    client.watch("t")
    reserved = put(client, "t", b"reserved", priority=9000)
    put(client, "other", b"other tube", priority=9000)
    buried = put(client, "t", b"buried", priority=9000)
    delayed_id = client.put(b"delayed", priority=9000, delay=100)
    wanted = put(client, "t", b"the oldest ready", priority=9000)
    head = put(client, "t", b"head", priority=1)
    client.reserve_job(reserved)
    bury(client, buried)
    assert client.stats_job(delayed_id)["state"] == "delayed"
    with Admin(beanstalkd.address) as admin:
        (t,) = admin.tube_stats(["t"])
        assert (t.next_ready_id, t.oldest_ready_id, t.oldest_ready_exact) == (
            head,
            wanted,
            True,
        )
        # The finder remembers job 1 was reserved in "t": when it comes back, it is oldest.
        client.release(greenstalk.Job(reserved, b""), priority=9000)
        (t,) = admin.tube_stats(["t"])
        assert t.oldest_ready_id == reserved
        client.delete(reserved)
        client.kick_job(buried)
        (t,) = admin.tube_stats(["t"])
        assert t.oldest_ready_id == buried


def test_single_ready_job_needs_no_scan(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    for _ in range(50):
        put(client, "filler", b"x")
    only = put(client, "t", b"only")
    before = client.stats()["cmd-stats-job"]
    with Admin(beanstalkd.address, scan_budget=0) as admin:
        (t,) = admin.tube_stats(["t"])
    assert (t.oldest_ready_id, t.oldest_ready_exact) == (only, True)
    assert client.stats()["cmd-stats-job"] == before + 1  # the head's age, nothing more


def test_scan_budget_gives_a_lower_bound_then_catches_up_across_calls(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    client.use("filler")
    for _ in range(2500):
        client.put(b"x")
    old = put(client, "t", b"old", priority=9000)  # id 2501
    head = put(client, "t", b"head", priority=0)
    with Admin(beanstalkd.address, scan_budget=1000) as admin:
        calls = []
        for _ in range(4):
            (t,) = admin.tube_stats(["t"])
            calls.append((t.oldest_ready_id, t.oldest_ready_exact))
    # Each call walks on from where the last stopped: 1-1000, 1001-2000, then 2001-2501
    # (reaching the old job); after that the answer comes from memory.
    assert calls[0] == (head, False)
    assert calls[1] == (head, False)
    assert calls[2] == (old, True)
    assert calls[3] == (old, True)


def test_oldest_ready_matches_a_brute_force_answer_under_random_traffic(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    rng = random.Random(20240601)
    tubes = ["a", "b", "c"]
    client.watch("a")
    client.watch("b")
    client.watch("c")
    reserved: list[int] = []
    trusted = 0  # answers of the tiny-budget finder that claimed to be exact

    def truth() -> dict[str, int]:
        oldest: dict[str, int] = {}
        for job_id in range(1, client.stats()["total-jobs"] + 1):
            try:
                stats = client.stats_job(job_id)
            except greenstalk.NotFoundError:
                continue
            if stats["state"] == "ready":
                oldest.setdefault(stats["tube"], job_id)
        return oldest

    with Admin(beanstalkd.address, scan_budget=40) as finder:
        for step in range(400):
            action = rng.random()
            if action < 0.45:
                put(
                    client,
                    rng.choice(tubes),
                    b"x",
                    priority=rng.choice([0, 1024, 5000]),
                )
            elif action < 0.65:
                with contextlib.suppress(greenstalk.TimedOutError):
                    reserved.append(client.reserve(timeout=0).id)
            elif action < 0.8 and reserved:
                job = greenstalk.Job(reserved.pop(rng.randrange(len(reserved))), b"")
                if rng.random() < 0.5:
                    client.release(job, priority=rng.choice([0, 5000]))
                else:
                    client.bury(job)
            elif action < 0.9 and reserved:
                client.delete(reserved.pop(0))
            else:
                client.use(rng.choice(tubes))
                client.kick(2)
            if step % 20 == 19:
                expected = truth()
                # A fresh Admin with the default budget is always exact.
                with Admin(beanstalkd.address) as fresh:
                    stats = fresh.tube_stats()
                assert {t.name: t.oldest_ready_id for t in stats if t.ready} == expected, step
                assert all(t.oldest_ready_exact for t in stats)
                # The long-lived one with a tiny budget is right whenever it says it is exact.
                for t in finder.tube_stats():
                    if t.ready and t.oldest_ready_exact:
                        assert t.oldest_ready_id == expected[t.name], step
                        trusted += 1
    assert trusted >= 20


def test_restarted_server_resets_what_the_finder_learnt(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    put(client, "t", b"1", priority=5000)
    put(client, "t", b"2", priority=0)
    with Admin(beanstalkd.address) as admin:
        assert admin.tube_stats(["t"])[0].oldest_ready_id == 1
        beanstalkd.kill()
        with pytest.raises(ConnectError):
            admin.tube_stats(["t"])
        beanstalkd.start()
        with greenstalk.Client(beanstalkd.pair) as again:
            again.delete(1)
            again.use("t")
            newer = again.put("3", priority=5000)
        (t,) = admin.tube_stats(["t"])
        assert (t.next_ready_id, t.oldest_ready_id) == (2, 2)
        assert newer > 2


def test_admin_does_not_keep_a_peeked_tube_alive(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    job = put(client, "fleeting", b"x")
    client.use("default")
    with Admin(beanstalkd.address) as admin:
        assert "fleeting" in [t.name for t in admin.tube_stats()]
        client.delete(job)
        assert "fleeting" not in admin.tube_names()


def test_unknown_tube(beanstalkd: Beanstalkd) -> None:
    with Admin(beanstalkd.address) as admin, pytest.raises(UnknownTube, match="'nope'"):
        admin.tube_stats(["nope"])
    code, out, err = cli("stats", "-s", beanstalkd.address, "--tube", "nope")
    assert (code, out) == (1, "")
    assert err == f"beanfleet: error: unknown tube 'nope' on {beanstalkd.address}\n"


def test_stats_command_table(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    put(client, "emails", b"1", priority=3000)
    put(client, "emails", b"2", priority=0)
    client.pause_tube("emails", 60)
    code, out, err = cli("stats", "-s", beanstalkd.address)
    assert (code, err) == (0, "")
    summary, table = out.split("\n\n")
    assert summary.startswith("beanstalkd 1.") and beanstalkd.address in summary
    assert "jobs: ready 2  reserved 0  delayed 0  buried 0  urgent 1  created 2" in summary
    header, *rows = table.splitlines()
    assert header.split() == [
        *("TUBE", "READY", "RESERVED", "DELAYED", "BURIED", "URGENT", "WAITING"),
        *("WATCHING", "PAUSED", "TOTAL", "NEXT-AGE", "OLDEST-AGE"),
    ]
    emails = next(row.split() for row in rows if row.startswith("emails"))
    assert emails[:8] == ["emails", "2", "0", "0", "0", "1", "0", "0"]
    assert emails[8] in {"60s", "59s"}
    assert emails[9] == "2"


def test_stats_command_json_and_one_tube(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    put(client, "emails", b"1", priority=3000)
    head = put(client, "emails", b"2", priority=0)
    put(client, "other", b"3")
    code, out, _ = cli("stats", "-s", beanstalkd.address, "--tube", "emails", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["server"]["total-jobs"] == 3
    assert [t["name"] for t in data["tubes"]] == ["emails"]
    (emails,) = data["tubes"]
    assert emails["ready"] == 2
    assert emails["urgent"] == 1
    assert emails["next_ready_id"] == head
    assert emails["oldest_ready_id"] == 1
    assert emails["oldest_ready_exact"] is True


def test_stats_command_marks_a_lower_bound(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    client.use("filler")
    for _ in range(30):
        client.put(b"x")
    put(client, "t", b"old", priority=9000)
    put(client, "t", b"head", priority=0)
    code, out, _ = cli("stats", "-s", beanstalkd.address, "-t", "t", "--scan-limit", "10")
    assert code == 0
    row = out.splitlines()[-1].split()
    assert row[0] == "t"
    assert row[-1].startswith(">=")


@pytest.mark.parametrize(
    "command",
    [
        ["stats"],
        ["buried", "-t", "x"],
        ["kick", "-t", "x"],
        ["kick", "--job", "1"],
        ["pause", "-t", "x", "--seconds", "1"],
        ["delete", "--job", "1"],
        ["peek", "--job", "1"],
        ["peek", "-t", "x", "--buried"],
    ],
)
def test_connection_refused_is_one_line(command: list[str]) -> None:
    port = free_port()
    code, out, err = cli(*command, "-s", f"127.0.0.1:{port}")
    assert (code, out) == (1, "")
    assert err == (
        f"beanfleet: error: cannot connect to beanstalkd at 127.0.0.1:{port}: connection refused\n"
    )


@pytest.mark.parametrize("command", [["stats"], ["buried", "-t", "x"], ["peek", "--job", "1"]])
def test_a_bad_server_address_is_a_usage_error(command: list[str]) -> None:
    code, out, err = cli(*command, "-s", "garbage")
    assert (code, out) == (2, "")
    assert err.startswith("beanfleet: error: Invalid value for '--server': invalid server address")
    assert err.count("\n") == 1


def test_stats_into_a_closed_pipe_exits_quietly(beanstalkd: Beanstalkd) -> None:
    # `beanfleet stats | true`: the reader is gone before stats writes.  Not the server's
    # fault, so no "lost connection" line; a quiet exit 1 like a C tool's EPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*BEANFLEET, "stats", "-s", beanstalkd.address],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (1, "")


def test_a_tube_that_vanishes_between_list_and_stats_is_skipped(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    class ListsAGoneTube(Admin):
        # list-tubes answered just before the tube's last job was deleted.
        def tube_names(self) -> list[str]:
            return [*super().tube_names(), "vanished"]

    put(client, "t", b"1")
    with ListsAGoneTube(beanstalkd.address) as admin:
        assert "vanished" not in [t.name for t in admin.tube_stats()]
        with pytest.raises(UnknownTube):
            admin.tube_stats(["vanished"])
