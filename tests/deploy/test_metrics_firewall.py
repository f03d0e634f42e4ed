"""The metrics ports' firewall rules: rendered nft files that `nft -c` accepts, allowing
loopback and the scrapers (monitoring_scrape_allow) only."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def nft_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nft", "-c", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def nft_usable(tmp_path_factory: pytest.TempPathFactory) -> None:
    if shutil.which("nft") is None:
        pytest.skip("nft not installed")
    probe = tmp_path_factory.mktemp("nft") / "probe.nft"
    probe.write_text("table inet beanfleet_probe {\n}\n")
    if nft_check(probe).returncode != 0:
        pytest.skip("nft -c needs privileges this run does not have")


@pytest.mark.parametrize("manager", ["systemd", "supervisor"])
def test_rendered_tables_check(
    rendered_example: dict[str, Path], manager: str, nft_usable: None
) -> None:
    root = rendered_example[manager] / "etc/beanfleet"
    for name in ("metrics.nft", "beanstalkd.nft"):
        result = nft_check(root / name)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_only_scrapers_reach_the_metrics_ports(rendered_example: dict[str, Path]) -> None:
    root = rendered_example["systemd"] / "etc/beanfleet"
    metrics = (root / "metrics.nft").read_text()
    assert "tcp dport 9651 jump metrics" in metrics
    assert "ip saddr { 192.0.2.20 } accept\n\t\tdrop\n" in metrics
    queue = (root / "beanstalkd.nft").read_text()
    assert "tcp dport 9650 jump beanfleet_exporter" in queue
    assert queue.count("ip saddr { 192.0.2.20 } accept") == 1
    unit = (
        rendered_example["systemd"] / "etc/systemd/system/beanfleet-metrics.service"
    ).read_text()
    assert "\nExecStartPre=+/usr/sbin/nft -f /etc/beanfleet/metrics.nft\n" in unit
