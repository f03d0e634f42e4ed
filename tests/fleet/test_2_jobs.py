"""Priority 2: jobs put from the controller are processed by the fleet (on VMs the
controller puts them through worker1: they cross from one VM to the other)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from beanfleet import Producer
from fleetlib import MAILDIR, RECORD_LOG, Fleet, _seq_base, wait_for

BEANFLEET = str(Path(sys.executable).parent / "beanfleet")


def cli(fleet: Fleet, *args: str) -> str:
    res = subprocess.run(
        [BEANFLEET, *args, "--server", fleet.server],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, f"beanfleet {args}: {res.stdout}{res.stderr}"
    return res.stdout


@pytest.mark.vm
def test_record_jobs_processed_on_every_worker(fleet: Fleet) -> None:
    # A steady trickle (not one burst, which the first idle host can take whole: with two
    # queue hosts an idle process waits on each server in turn), spread over every queue
    # host, until every worker host has run some; each job exactly once.
    base = _seq_base()
    seqs: list[int] = []

    def hosts() -> set[str]:
        return {w for w, _, s in fleet.record_lines() if s >= base}

    with Producer(servers=fleet.servers) as producer:
        deadline = time.monotonic() + 60
        while hosts() != set(fleet.workers) and time.monotonic() < deadline:
            batch = [base + len(seqs) + i for i in range(10)]
            for s in batch:
                producer.put("record", {"seq": s})
                time.sleep(0.05)
            seqs += batch
    counts = fleet.wait_recorded(set(seqs))
    assert all(c == 1 for c in counts.values()), counts
    assert hosts() == set(fleet.workers), f"{len(seqs)} jobs in 60 s only ran on {hosts()}"


@pytest.mark.vm
def test_email_lands_in_maildir(fleet: Fleet) -> None:
    marker = f"fleet-test-{time.time_ns()}"
    job_id = int(
        cli(
            fleet, "put", "--tube", "emails", json.dumps({"to": "a@example.org", "subject": marker})
        )
    )
    grep = f"grep -rl 'Subject: {marker}' {MAILDIR}/new {MAILDIR}/cur 2>/dev/null"

    def delivered() -> list[str]:
        return [w for w in fleet.workers if fleet.run(w, grep).returncode == 0]

    hosts = wait_for("the email in a Maildir", delivered, 60, 0.5)
    assert len(hosts) == 1, hosts
    msg = fleet.check(hosts[0], f"cat $({grep} | head -n1)")
    assert f"X-Beanfleet-Job: emails/{fleet.job_ref(job_id)}/1" in msg, msg


def _single_consumer(fleet: Fleet, on: bool) -> None:
    """Only worker1's checks-1 reserves from `record` (on) / all checks processes (off)."""
    if on:
        fleet.check("worker1", "systemctl stop beanfleet-worker@checks-2")
        fleet.check(
            "worker2",
            "supervisorctl stop 'beanfleet:beanfleet-checks_01' 'beanfleet:beanfleet-checks_02'",
        )
    else:
        fleet.check("worker1", "systemctl start beanfleet-worker@checks-2")
        fleet.check(
            "worker2",
            "supervisorctl start 'beanfleet:beanfleet-checks_01' 'beanfleet:beanfleet-checks_02'",
        )


def test_priorities_respected(fleet: Fleet) -> None:
    base = _seq_base()
    low = [base + i for i in range(5)]
    high = [base + 100 + i for i in range(5)]
    _single_consumer(fleet, True)
    try:
        with fleet.admin() as admin, fleet.producer() as producer:
            admin.pause("record", 60)
            try:
                for s in low:
                    producer.put("record", {"seq": s}, priority="low")
                for s in high:
                    producer.put("record", {"seq": s}, priority="high")
            finally:
                admin.pause("record", 0)
        fleet.wait_recorded(set(low + high))
    finally:
        _single_consumer(fleet, False)
    order = [s for w, _, s in fleet.record_lines() if w == "worker1" and s in set(low + high)]
    assert order[:5] == high and sorted(order[5:]) == low, order


def test_delayed_job_waits(fleet: Fleet) -> None:
    seq = _seq_base()
    with fleet.producer() as producer:
        t0 = time.monotonic()
        producer.put("record", {"seq": seq}, delay=3)
    fleet.wait_recorded({seq}, timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed >= 2.5, f"delayed job processed after {elapsed:.1f}s (< 3 s delay)"


def test_failing_job_retried_then_buried(fleet: Fleet) -> None:
    body = {"n": time.time_ns()}
    with fleet.producer() as producer:
        job_id = producer.put("fail", body)

    def buried() -> dict | None:
        with fleet.admin() as admin:
            stats = admin.job(job_id).stats
        return stats if stats["state"] == "buried" else None

    # max_retries 2, backoff 1-2 s: 3 attempts within a few seconds, all on the job the
    # producer put (a retry releases it: same id, same body).
    stats = wait_for("the failing job to be buried", buried, 60, 0.5)
    assert (int(stats["reserves"]), int(stats["releases"]), int(stats["buries"])) == (3, 2, 1)
    with fleet.admin() as admin:
        assert json.loads(admin.job(job_id).body) == body

    listed = cli(fleet, "buried", "--tube", "fail", "--json")
    ids = [job["id"] for job in json.loads(listed)["jobs"]]
    assert job_id in ids, listed

    cli(fleet, "kick", "--job", str(job_id))
    with fleet.admin() as admin:
        stats = admin.job(job_id).stats
    # Kicked back to ready (one more attempt); a worker may already have run and buried it.
    assert int(stats["kicks"]) == 1, stats


@pytest.mark.vm
def test_record_log_owned_by_beanfleet(fleet: Fleet) -> None:
    for worker in fleet.workers:
        assert fleet.check(worker, f"stat -c %U {RECORD_LOG}").strip() == "beanfleet"
