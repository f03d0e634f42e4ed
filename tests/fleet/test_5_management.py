"""Priority 5: restarting every pool during a stream of jobs loses and doubles nothing."""

from __future__ import annotations

from fleetlib import Fleet, Stream, assert_exactly_once, wait_for


def _supervisor_all_running(fleet: Fleet) -> bool:
    out = fleet.run("worker2", "supervisorctl status 'beanfleet:*'").stdout
    return bool(out.strip()) and all(" RUNNING " in line for line in out.splitlines())


def test_restart_all_pools_during_stream(fleet: Fleet) -> None:
    with Stream(fleet) as stream:
        wait_for("the stream to start", lambda: len(stream.seqs) >= 20, 30)
        fleet.check("worker1", "systemctl restart beanfleet.target", timeout=120)
        fleet.check("worker2", "supervisorctl restart 'beanfleet:*'", timeout=120)
        n = len(stream.seqs)
        wait_for("more jobs after the restarts", lambda: len(stream.seqs) >= n + 20, 30)
    assert fleet.check("worker1", "systemctl is-active beanfleet.target").strip() == "active"
    wait_for("supervisor pools RUNNING", lambda: _supervisor_all_running(fleet), 60)
    assert_exactly_once(fleet, stream.seqs)
