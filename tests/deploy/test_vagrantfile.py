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


def test_vm_accel_caches_only_a_probed_answer(tmp_path: Path) -> None:
    # Without a kernel to boot, scripts/vm-accel.sh can only guess; the guess must not be
    # cached, or a later `vagrant up` (after the box, and its kernel, exist) keeps it.
    if any(Path(k).is_file() for k in ("/boot/vmlinuz", f"/boot/vmlinuz-{os.uname().release}")):
        pytest.skip("this host has a kernel in /boot: the script would probe, not guess")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEANFLEET_")}
    res = subprocess.run(
        [str(REPO / "scripts" / "vm-accel.sh")],
        env=dict(env, BEANFLEET_BUILD_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() in {"kvm", "qemu"}
    assert not (tmp_path / "vm-accel").exists()
