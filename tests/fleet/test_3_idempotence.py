"""Priority 3: provisioning the running fleet again changes nothing."""

from __future__ import annotations

import re
import time

import pytest
from fleetlib import Fleet


def recap(output: str) -> dict[str, dict[str, int]]:
    """host -> {ok, changed, unreachable, failed, ...} from ansible's PLAY RECAP."""
    hosts: dict[str, dict[str, int]] = {}
    section = output.split("PLAY RECAP", 1)[-1]
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", section, re.M):
        hosts[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return hosts


@pytest.mark.vm
def test_second_provision_changes_nothing(fleet: Fleet) -> None:
    t0 = time.monotonic()
    res = fleet.fleet_sh("provision")
    fleet.timings.append(("idempotent provision (test)", time.monotonic() - t0))
    (fleet.dir / "provision-idempotence.log").write_text(res.stdout + res.stderr)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    hosts = recap(res.stdout)
    assert set(hosts) == set(fleet.fleet_hosts), res.stdout[-2000:]
    changed = {h: r["changed"] for h, r in hosts.items() if r["changed"] or r["failed"]}
    assert not changed, f"changed on second run: {changed}\n" + "\n".join(
        line for line in res.stdout.splitlines() if line.startswith("changed:")
    )
