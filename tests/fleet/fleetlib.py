"""Fleet test helpers, the `fleet` fixture and the timing summary (see conftest.py).

The same tests run against two kinds of fleet, chosen by ``BEANFLEET_PROVIDER``:

* ``docker`` (default, ``make test-fleet``): systemd containers, one fleet per release
  (``BEANFLEET_RELEASES``, default "bookworm trixie"), each with ``BEANFLEET_MANAGER=mixed``:
  worker1 runs its pools under systemd, worker2 under supervisor
  (ansible/inventories/vagrant/host_vars). The session fixture ``fleet`` is parametrized
  over the releases, so pytest runs every test of one release, tears that fleet down, then
  brings up the next.
* ``libvirt`` (``make test-vm``): real VMs (queue + worker1, systemd), the tests marked
  ``vm``. The controller is not in the inventory, so it plays the outsider, and it reaches
  beanstalkd through an SSH tunnel from worker1 (as a fleet member).

Env:
  BEANFLEET_PROVIDER       docker (default) | libvirt
  BEANFLEET_RELEASES       releases to test (space/comma separated)
  BEANFLEET_REQUIRE_FLEET  set (CI): fail instead of skipping when docker is unavailable
  BEANFLEET_KEEP_FLEET=1   leave the fleet running afterwards (debugging)
  BEANFLEET_REUSE_FLEET=1  skip `fleet.sh up` when the fleet is already running
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from beanfleet import Producer
from beanfleet.admin import Admin

REPO = Path(__file__).resolve().parents[2]
FLEET_SH = REPO / "scripts" / "fleet.sh"
GROUP_VARS = REPO / "ansible" / "inventories" / "vagrant" / "group_vars" / "all.yml"
PROVIDER = os.environ.get("BEANFLEET_PROVIDER", "docker")
# docker: one fleet covers both managers; VMs: systemd (the default a laptop gets).
MANAGER = "mixed" if PROVIDER == "docker" else "systemd"
MIXED_WORKERS = {"worker1": "systemd", "worker2": "supervisor"}
RECORD_LOG = "/var/lib/beanfleet/record/record.log"
MAILDIR = "/var/lib/beanfleet/maildir"
BEANSTALKD_PORT = 11300
# The trixie container fleet has two queue hosts (test_8_queues.py: spreading, failover);
# bookworm keeps the default single queue host, so both shapes run every other test.
TWO_QUEUE_RELEASES = ("trixie",)
TWO_QUEUE_MACHINES = "queue queue2 worker1 worker2 monitor outsider"

# Timings for the terminal summary: release -> [(label, seconds)], (release, module) -> s.
FLEET_TIMES: dict[str, list[tuple[str, float]]] = defaultdict(list)
MODULE_TIMES: dict[tuple[str, str], float] = defaultdict(float)


def releases() -> list[str]:
    default = "bookworm trixie" if PROVIDER == "docker" else "bookworm"
    raw = os.environ.get("BEANFLEET_RELEASES", default)
    return [r for r in re.split(r"[\s,]+", raw) if r]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(
    what: str, condition: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class Tunnel:
    """``127.0.0.1:PORT`` -> beanstalkd, forwarded by SSH through a fleet host, so the
    connection reaches beanstalkd from an address its firewall admits."""

    def __init__(self, ssh_config: str, via: str, target: str) -> None:
        self.ssh_config, self.via, self.target = ssh_config, via, target
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.stop()
        self.proc = subprocess.Popen(
            ["ssh", "-F", self.ssh_config, "-N", "-o", "ControlPath=none",
             "-o", "ExitOnForwardFailure=yes",
             "-L", f"127.0.0.1:{self.port}:{self.target}:{BEANSTALKD_PORT}", self.via],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(f"the SSH tunnel via {self.via}", lambda: port_open("127.0.0.1", self.port), 60)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass
class Fleet:
    release: str
    dir: Path
    data: dict[str, Any]
    env: dict[str, str]
    timings: list[tuple[str, float]] = field(default_factory=list)
    tunnel: Tunnel | None = None

    @property
    def name(self) -> str:
        return str(self.data["fleet"])

    @property
    def provider(self) -> str:
        return str(self.data.get("provider", "docker"))

    @property
    def machines(self) -> list[str]:
        return list(self.data["machines"])

    @property
    def fleet_hosts(self) -> list[str]:
        return [m for m, d in self.data["machines"].items() if d["group"]]

    @property
    def queues(self) -> list[str]:
        """The queue hosts, in inventory order (the first is `queue`)."""
        return [m for m, d in self.data["machines"].items() if d["group"] == "queue"]

    @property
    def servers(self) -> list[str]:
        """Every queue host's beanstalkd, as the controller reaches it (docker: directly)."""
        if len(self.queues) == 1:
            return [self.server]
        return [f"{self.address(q)}:{BEANSTALKD_PORT}" for q in self.queues]

    def job_ref(self, job_id: int) -> str:
        """How a worker names a job put through :attr:`server`: its id, or SERVER/ID when
        the pools serve several queue hosts (the fleet hosts' view of the address)."""
        if len(self.queues) == 1:
            return str(job_id)
        return f"{self.address('queue')}:{BEANSTALKD_PORT}/{job_id}"

    @property
    def workers(self) -> dict[str, str]:
        """Worker host -> the process manager of its pools."""
        hosts = [m for m, d in self.data["machines"].items() if d["group"] == "workers"]
        if self.data["manager"] == "mixed":
            return {h: MIXED_WORKERS[h] for h in hosts}
        return {h: str(self.data["manager"]) for h in hosts}

    def address(self, machine: str) -> str:
        """The address the fleet hosts see ``machine`` at."""
        return str(self.data["machines"][machine]["address"])

    def container(self, machine: str) -> str:
        return str(self.data["machines"][machine]["container_name"])

    @property
    def server(self) -> str:
        """Where the controller reaches beanstalkd (directly, or through the tunnel)."""
        if self.tunnel is not None:
            return f"127.0.0.1:{self.tunnel.port}"
        return f"{self.address('queue')}:{BEANSTALKD_PORT}"

    def open_tunnel(self) -> None:
        via = next(iter(self.workers))
        self.tunnel = Tunnel(str(self.data["ssh_config"]), via, self.address("queue"))
        self.tunnel.start()

    # -- commands on the hosts (as root) -------------------------------------------------

    def run(
        self, machine: str, command: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        if self.provider == "docker":
            argv = ["docker", "exec", self.container(machine), "bash", "-c", command]
            stdin = None
        else:  # the command goes on stdin: no second round of shell quoting
            argv = ["ssh", "-F", str(self.data["ssh_config"]), machine, "sudo", "bash", "-s"]
            stdin = command
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )

    def check(self, machine: str, command: str, timeout: float = 60) -> str:
        res = self.run(machine, command, timeout)
        assert res.returncode == 0, (
            f"{machine}: {command!r} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
        )
        return res.stdout

    def run_outside(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on a machine that is not in the inventory: the `outsider`
        container, or (VMs) the controller itself."""
        if "outsider" in self.data["machines"]:
            return self.run("outsider", command, timeout)
        return subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=timeout, check=False
        )

    def restart_hosts(self, machines: list[str]) -> None:
        """Restart hosts as a whole (a container restart, or a VM reboot) and wait until
        they answer again."""
        if self.provider == "docker":
            for m in machines:
                subprocess.run(["docker", "restart", self.container(m)], check=True, timeout=180)
        else:
            res = subprocess.run(
                ["vagrant", "reload", *machines], env=self.vagrant_env(), cwd=REPO,
                capture_output=True, text=True, timeout=1200, check=False,
            )  # fmt: skip
            (self.dir / "reload.log").write_text(res.stdout + res.stderr)
            assert res.returncode == 0, "vagrant reload failed:\n" + res.stderr[-2000:]
            # A VM may come back with another management address (DHCP).
            inv = subprocess.run(
                [str(FLEET_SH), "inventory"], env=self.vagrant_env(),
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert inv.returncode == 0, inv.stderr[-2000:]
            self.data = json.loads((self.dir / "fleet.json").read_text())
        for m in machines:
            wait_for(f"{m} to answer", lambda m=m: self.run(m, "true").returncode == 0, 300, 2)
        if self.tunnel is not None:
            self.tunnel.start()

    def vagrant_env(self) -> dict[str, str]:
        extra = {k: v for k, v in self.data["vagrant_env"].items() if v}
        return dict(self.env, **extra)

    # -- fleet.sh ------------------------------------------------------------------------

    def fleet_sh(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FLEET_SH), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- queue helpers -------------------------------------------------------------------

    def producer(self) -> Producer:
        return Producer(self.server)

    def admin(self) -> Admin:
        return Admin(self.server)

    def record_lines(self) -> list[tuple[str, str, int]]:
        """(worker, job id, seq) of every line of record.log on both workers; the id is
        SERVER/ID when the pools serve several queue hosts."""
        out: list[tuple[str, str, int]] = []
        for worker in self.workers:
            res = self.run(worker, f"cat {RECORD_LOG} 2>/dev/null || true")
            for line in res.stdout.splitlines():
                job_id, seq = line.split()
                out.append((worker, job_id, int(seq)))
        return out

    def seq_counts(self, seqs: set[int]) -> Counter[int]:
        return Counter(seq for _, _, seq in self.record_lines() if seq in seqs)

    def wait_recorded(self, seqs: set[int], timeout: float = 90) -> Counter[int]:
        """Wait until every seq of ``seqs`` is in a record.log; return the counts."""

        def done() -> Counter[int] | None:
            counts = self.seq_counts(seqs)
            return counts if set(counts) >= seqs else None

        counts: Counter[int] = wait_for(f"{len(seqs)} record jobs", done, timeout, 0.5)
        return counts

    def main_pid(self, machine: str, unit: str) -> int:
        return int(self.check(machine, f"systemctl show -p MainPID --value {unit}").strip())


def _seq_base() -> int:
    """A seq range no other test run used (record.log keeps lines across tests)."""
    return int(time.time() * 1000) * 1000


class Stream:
    """Put ``record`` jobs at a steady rate from a thread until stopped: to the fleet's
    first queue host, or spread over ``servers`` (at-least-once: a put whose reply was lost
    is put again on another server, so its seq may run twice)."""

    def __init__(self, fleet: Fleet, rate: float = 20.0, servers: list[str] | None = None) -> None:
        self.fleet = fleet
        self.servers = servers
        self.interval = 1.0 / rate
        self.base = _seq_base()
        self.seqs: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            if self.servers:
                producer = Producer(servers=self.servers, at_least_once=True)
            else:
                producer = self.fleet.producer()
            with producer:
                n = 0
                while not self._stop.is_set():
                    seq = self.base + n
                    producer.put("record", {"seq": seq})
                    self.seqs.append(seq)
                    n += 1
                    self._stop.wait(self.interval)
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    def count(self) -> int:
        return len(self.seqs)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self.errors, f"putting jobs failed: {self.errors!r}"
        return self.seqs


def assert_exactly_once(fleet: Fleet, seqs: list[int], timeout: float = 120) -> None:
    """Every seq recorded once: none lost, none run twice."""
    assert seqs, "no jobs were put"
    counts = fleet.wait_recorded(set(seqs), timeout)
    doubled = {s: c for s, c in counts.items() if c > 1}
    assert not doubled, f"{len(doubled)} of {len(seqs)} jobs ran more than once: {doubled}"


# -- the fleet fixture -------------------------------------------------------------------


def _provider_problem() -> str | None:
    """Why the fleet cannot run here, or None. docker: needs docker, vagrant and a dockerd
    that answers (started here when it is not: dockerd-up.sh is idempotent). libvirt:
    vagrant and virsh (fleet.sh starts libvirtd)."""
    needed = ("docker", "vagrant") if PROVIDER == "docker" else ("vagrant", "virsh")
    missing = [c for c in needed if not shutil.which(c)]
    if missing:
        return f"not installed: {', '.join(missing)}"
    if PROVIDER != "docker":
        return None
    res = subprocess.run(
        [str(REPO / "scripts" / "dockerd-up.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if res.returncode != 0:
        return "dockerd-up.sh failed: " + " | ".join(res.stderr.strip().splitlines()[-3:])
    return None


def _timings_from(output: str) -> list[tuple[str, float]]:
    return [
        (m.group(1), float(m.group(2)))
        for m in re.finditer(r"TIMING (.+?): ([0-9.]+)s \(exit", output)
    ]


def _running(fleet_dir: Path) -> bool:
    fj = fleet_dir / "fleet.json"
    if not fj.exists():
        return False
    data = json.loads(fj.read_text())
    for name, m in data["machines"].items():
        if data.get("provider", "docker") == "docker":
            argv = ["docker", "inspect", "-f", "{{.State.Running}}", m["container_name"]]
        else:
            argv = ["ssh", "-F", data["ssh_config"], "-o", "ConnectTimeout=5", name, "echo", "true"]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if res.stdout.strip() != "true":
            return False
    return True


def _fleet_name(release: str) -> str:
    return f"{release}-{MANAGER}" + ("" if PROVIDER == "docker" else f"-{PROVIDER}")


@pytest.fixture(scope="session", params=releases())
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    release: str = request.param
    problem = _provider_problem()
    if problem:
        if os.environ.get("BEANFLEET_REQUIRE_FLEET"):
            pytest.fail(f"fleet unavailable ({problem}) and BEANFLEET_REQUIRE_FLEET is set")
        pytest.skip(f"fleet unavailable ({problem}); set BEANFLEET_REQUIRE_FLEET to fail instead")
    env = dict(
        os.environ,
        BEANFLEET_RELEASE=release,
        BEANFLEET_MANAGER=MANAGER,
        BEANFLEET_PROVIDER=PROVIDER,
    )
    if PROVIDER == "docker" and release in TWO_QUEUE_RELEASES:
        env.setdefault("BEANFLEET_MACHINES", TWO_QUEUE_MACHINES)
    build = Path(os.environ.get("BEANFLEET_BUILD_DIR", REPO / "build"))
    fleet_dir = build / "fleets" / _fleet_name(release)
    times = FLEET_TIMES[release]
    if os.environ.get("BEANFLEET_REUSE_FLEET") == "1" and _running(fleet_dir):
        times.append(("reused running fleet", 0.0))
    else:
        t0 = time.monotonic()
        res = subprocess.run(
            [str(FLEET_SH), "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        fleet_dir.mkdir(parents=True, exist_ok=True)
        (fleet_dir / "up.log").write_text(res.stdout + res.stderr)
        times.extend(_timings_from(res.stderr))
        times.append(("fleet.sh up (total)", time.monotonic() - t0))
        if res.returncode != 0:
            _down(env, release)
            pytest.fail(
                f"scripts/fleet.sh up ({release}) failed, exit {res.returncode}:\n"
                + "\n".join((res.stdout + res.stderr).splitlines()[-40:])
            )
    data = json.loads((fleet_dir / "fleet.json").read_text())
    f = Fleet(release=release, dir=fleet_dir, data=data, env=env, timings=times)
    if f.provider != "docker":
        f.open_tunnel()
    try:
        yield f
    finally:
        if f.tunnel is not None:
            f.tunnel.stop()
        if os.environ.get("BEANFLEET_KEEP_FLEET") != "1":
            _down(env, release)


def _down(env: dict[str, str], release: str) -> None:
    t0 = time.monotonic()
    subprocess.run([str(FLEET_SH), "down"], env=env, capture_output=True, timeout=600, check=False)
    FLEET_TIMES[release].append(("fleet.sh down", time.monotonic() - t0))


@pytest.fixture(scope="session")
def pools() -> list[dict[str, Any]]:
    description = yaml.safe_load(GROUP_VARS.read_text())
    return [p for p in description["beanfleet_pools"] if p.get("state", "present") == "present"]


# -- timing summary ----------------------------------------------------------------------


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    m = re.search(r"\[([a-z]+)\]$", report.nodeid)
    release = m.group(1) if m else "default"
    module = report.nodeid.split("::")[0]
    MODULE_TIMES[(release, module)] += report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FLEET_TIMES and not MODULE_TIMES:
        return
    tr = terminalreporter
    tr.section("beanfleet fleet timings")
    for release in sorted(set(FLEET_TIMES) | {r for r, _ in MODULE_TIMES}):
        tr.write_line(f"{_fleet_name(release) if release in releases() else release}:")
        for label, secs in FLEET_TIMES.get(release, []):
            tr.write_line(f"  {label:<50} {secs:7.1f}s")
        for (rel, module), secs in sorted(MODULE_TIMES.items()):
            if rel == release:
                tr.write_line(f"  {module:<50} {secs:7.1f}s  (test calls)")
