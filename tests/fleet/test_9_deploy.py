"""Priority 4: a deploy that resizes one pool restarts only that pool, during a stream.

Runs last in each release (it leaves the fleet with reports at 2 processes; the fleet is
torn down afterwards).
"""

from __future__ import annotations

import json
import time
from typing import Any

import yaml
from fleetlib import GROUP_VARS, Fleet, Stream, assert_exactly_once, wait_for


def test_resize_reports_pool_during_stream(fleet: Fleet, pools: list[dict[str, Any]]) -> None:
    resized = [dict(p, processes=2) if p["name"] == "reports" else p for p in pools]
    # keep the absent pools of the description (state: absent) as they are
    description = yaml.safe_load(GROUP_VARS.read_text())
    absent = [p for p in description["beanfleet_pools"] if p.get("state") == "absent"]
    assert next(p for p in pools if p["name"] == "reports")["processes"] == 1
    overrides = fleet.dir / "deploy-vars.json"
    overrides.write_text(json.dumps({"beanfleet_pools": resized + absent}))

    others = [
        f"beanfleet-worker@{p['name']}-{n}.service"
        for p in pools
        if p["name"] != "reports"
        for n in range(1, p["processes"] + 1)
    ]
    before = {u: fleet.main_pid("worker1", u) for u in others}
    reports1 = fleet.main_pid("worker1", "beanfleet-worker@reports-1.service")

    with Stream(fleet) as stream:
        wait_for("the stream to start", lambda: len(stream.seqs) >= 20, 30)
        t0 = time.monotonic()
        res = fleet.fleet_sh("provision", "--", "-e", f"@{overrides}")
        fleet.timings.append(("deploy provision (test)", time.monotonic() - t0))
        (fleet.dir / "provision-deploy.log").write_text(res.stdout + res.stderr)
        n = len(stream.seqs)
        wait_for("more jobs after the deploy", lambda: len(stream.seqs) >= n + 20, 30)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    after = {u: fleet.main_pid("worker1", u) for u in others}
    assert after == before, "other pools restarted on worker1"
    for n in (1, 2):
        unit = f"beanfleet-worker@reports-{n}.service"
        assert fleet.check("worker1", f"systemctl is-active {unit}").strip() == "active"
    # reports-1 itself may or may not restart (its pool config is unchanged but the pool is)
    assert fleet.main_pid("worker1", "beanfleet-worker@reports-1.service") > 0
    del reports1

    out = fleet.check("worker2", "supervisorctl status 'beanfleet:*'")
    assert "beanfleet:beanfleet-reports_02" in out, out

    assert_exactly_once(fleet, stream.seqs)
