"""The rendered units pass `systemd-analyze verify` and meet the exposure goals.

systemd-analyze runs offline against a scratch root (--root): the rendered files, a copy of
the host's system units (Debian's beanstalkd.service among them) and empty stand-ins for the
programs the units execute, which verify insists on finding.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from beanfleet import fleet
from beanfleet.fleet.render import render

WORKER_GOAL = 2.0
METRICS_GOAL = 2.0  # the exporter and the worker metrics endpoint
METRICS_UNITS = ["beanfleet-exporter.service", "beanfleet-metrics.service"]
BEANSTALKD_GOAL = 2.5
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
EXEC_RE = re.compile(r"^Exec\w+=[-+!@:]*(/\S+)", re.MULTILINE)

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, example_fleet: dict[str, object]) -> Path:
    if not (SYSTEM_UNITS / "beanstalkd.service").exists():
        pytest.fail("Debian's beanstalkd.service missing: apt-get install beanstalkd")
    base = tmp_path_factory.mktemp("systemd-root")
    render(dict(example_fleet), base, "systemd")
    shutil.copytree(SYSTEM_UNITS, base / "usr/lib/systemd/system", symlinks=True)
    for directory in ("usr/bin", "usr/sbin"):
        (base / directory).mkdir(parents=True)
    (base / "lib").symlink_to("usr/lib")
    (base / "bin").symlink_to("usr/bin")
    (base / "sbin").symlink_to("usr/sbin")
    texts = [p.read_text() for p in (base / "etc").rglob("*") if p.is_file()]
    texts.append((SYSTEM_UNITS / "beanstalkd.service").read_text())
    for text in texts:
        for program in EXEC_RE.findall(text):
            stub = base / program.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
    return base


def units(example_fleet: dict[str, object]) -> list[str]:
    model = fleet.validate(example_fleet, offline=True)
    names = [
        f"beanfleet-worker@{i}.service" for p in model.present_pools for i in fleet.instances(p)
    ]
    return [*METRICS_UNITS, *names, "beanfleet.target", "beanstalkd.service"]


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args, f"--root={root}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_verify(root: Path, example_fleet: dict[str, object]) -> None:
    result = analyze(root, "verify", *units(example_fleet))
    # verify exits 0 on mere warnings (an unparsable value is "ignored"): none allowed.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout
    assert result.stderr.strip() == "", result.stderr


def test_verify_catches_a_bad_drop_in(root: Path, tmp_path: Path) -> None:
    broken = tmp_path / "root"
    shutil.copytree(root, broken, symlinks=True)
    conf = broken / "etc/beanfleet/pools/emails.conf"
    conf.write_text(conf.read_text() + "TimeoutStopSec=soon\n")
    result = analyze(broken, "verify", "beanfleet-worker@emails-1.service")
    assert "Failed to parse" in result.stderr


def exposure(root: Path, unit: str) -> float:
    result = analyze(root, "security", "--offline=true", "--no-pager", unit)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_worker_exposure(root: Path, example_fleet: dict[str, object]) -> None:
    for unit in units(example_fleet)[len(METRICS_UNITS) : -2]:
        assert exposure(root, unit) <= WORKER_GOAL, unit


@pytest.mark.parametrize("unit", METRICS_UNITS)
def test_metrics_units_exposure(root: Path, unit: str) -> None:
    assert exposure(root, unit) <= METRICS_GOAL


def test_metrics_units_say_what_the_spec_asks(root: Path) -> None:
    exporter = (root / "etc/systemd/system/beanfleet-exporter.service").read_text()
    assert "\nAfter=network-online.target beanstalkd.service\n" in exporter
    assert (
        "--server 127.0.0.1:11300 --listen 0.0.0.0:9650 --binlog-dir /var/lib/beanstalkd\n"
        in exporter
    )
    endpoint = (root / "etc/systemd/system/beanfleet-metrics.service").read_text()
    assert "metrics-endpoint --dir /var/lib/beanfleet/metrics --listen 0.0.0.0:9651\n" in endpoint
    assert "\nUser=beanfleet\n" in endpoint
    pool = (root / "etc/beanfleet/pools/emails.conf").read_text()
    assert " --pool emails --metrics-dir /var/lib/beanfleet/metrics " in pool


def test_beanstalkd_exposure(root: Path, tmp_path: Path) -> None:
    assert exposure(root, "beanstalkd.service") <= BEANSTALKD_GOAL
    # Without the drop-in it is Debian's unit (9.2 UNSAFE): the drop-in is what counts.
    bare = tmp_path / "bare"
    shutil.copytree(root, bare, symlinks=True)
    shutil.rmtree(bare / "etc/systemd/system/beanstalkd.service.d")
    assert exposure(bare, "beanstalkd.service") > 5


def test_units_say_what_the_spec_asks(root: Path) -> None:
    unit = (root / "etc/systemd/system/beanfleet-worker@.service").read_text()
    for line in (
        "PartOf=beanfleet.target",
        "WantedBy=beanfleet.target",
        "KillSignal=SIGTERM",
        "Restart=always",
        "User=beanfleet",
    ):
        assert f"\n{line}\n" in unit, line
    interval = int(re.search(r"StartLimitIntervalSec=(\d+)", unit).group(1))  # type: ignore[union-attr]
    burst = int(re.search(r"StartLimitBurst=(\d+)", unit).group(1))  # type: ignore[union-attr]
    restart_sec = float(re.search(r"RestartSec=(\d+)", unit).group(1))  # type: ignore[union-attr]
    # Even a worker exiting at once every time stays out of `failed` for a 30 s outage.
    assert 30 / restart_sec < burst <= interval / restart_sec
    target = (root / "etc/systemd/system/beanfleet.target").read_text()
    assert "WantedBy=multi-user.target" in target
    pool = (root / "etc/beanfleet/pools/reports.conf").read_text()
    assert "--timeout 300 " in pool
    assert "TimeoutStopSec=330\n" in pool  # longer than the pool's longest job
    dropin = (root / "etc/systemd/system/beanstalkd.service.d/beanfleet.conf").read_text()
    assert "-b /var/lib/beanstalkd -f 50 -s 10485760 -z 65535" in dropin
    assert "\nExecStart=\n" in dropin and "\nEnvironmentFile=\n" in dropin
