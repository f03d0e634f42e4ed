"""The one Vagrantfile validates for every provider and rejects bad fleet settings."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not shutil.which("vagrant"), reason="vagrant not installed")


def vagrant(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BEANFLEET_", "VAGRANT_"))}
    return subprocess.run(
        ["vagrant", *args],
        cwd=REPO,
        # A state dir of its own: no lock on (or view of) a running fleet.
        env=dict(clean, VAGRANT_DOTFILE_PATH=str(tmp_path / "vagrant"), **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("provider", ["docker", "libvirt"])
@pytest.mark.parametrize("machines", ["", "queue worker1", "queue queue2 worker1 worker2"])
def test_validates(tmp_path: Path, provider: str, machines: str) -> None:
    env = {"VAGRANT_DEFAULT_PROVIDER": provider, "BEANFLEET_LIBVIRT_DRIVER": "qemu"}
    if machines:
        env["BEANFLEET_MACHINES"] = machines
    res = vagrant(tmp_path, "validate", **env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "validated successfully" in res.stdout


def test_validates_for_virtualbox_without_virtualbox(tmp_path: Path) -> None:
    # VirtualBox is not installed here: its provider options are skipped (-p), the rest of
    # the configuration (machines, networks, provisioner) is checked.
    res = vagrant(tmp_path, "validate", "--ignore-provider", VAGRANT_DEFAULT_PROVIDER="virtualbox")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BEANFLEET_MACHINES": "queue worker9"}, "unknown machine(s) worker9"),
        ({"BEANFLEET_MACHINES": "worker1 outsider"}, "needs the queue host and a worker host"),
        ({"BEANFLEET_RELEASE": "sid"}, "BEANFLEET_RELEASE must be bookworm or trixie"),
        ({"BEANFLEET_MANAGER": "runit"}, "BEANFLEET_MANAGER must be systemd, supervisor or mixed"),
        ({"BEANFLEET_LIBVIRT_DRIVER": "xen"}, "BEANFLEET_LIBVIRT_DRIVER must be kvm or qemu"),
    ],
)
def test_bad_settings_are_one_clear_line(tmp_path: Path, env: dict[str, str], message: str) -> None:
    res = vagrant(tmp_path, "validate", VAGRANT_DEFAULT_PROVIDER="libvirt", **env)
    assert res.returncode != 0
    assert message in res.stdout + res.stderr, res.stdout + res.stderr
