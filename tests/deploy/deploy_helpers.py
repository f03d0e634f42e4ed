"""Helpers of the deployment tests: the repository's paths, ansible-playbook, file trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
TEMPLATES = REPO / "templates"
EXAMPLE_FLEET = ANSIBLE_DIR / "inventories" / "example" / "group_vars" / "all.yml"
ROLES = ("beanstalkd", "beanfleet", "supervisor", "monitoring")
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A tool of the test venv (ansible-playbook, ...); the deploy tests need them."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} missing: install the dev requirements (ansible-core, supervisor)")
    return str(path)


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCAL_TEMP": env.get("ANSIBLE_LOCAL_TEMP", "/tmp/beanfleet-ansible-local"),
            "ANSIBLE_HOME": env.get("ANSIBLE_HOME", "/tmp/beanfleet-ansible-home"),
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def run_playbook(
    playbook: Path,
    *args: str,
    inventory: str = "localhost,",
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook on localhost (connection local, this Python as interpreter)."""
    cmd = [
        tool("ansible-playbook"),
        "-i",
        inventory,
        str(playbook),
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        *args,
    ]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**ansible_env(), **(env or {})},
        timeout=timeout,
        check=False,
    )


def run_in_inventory(
    tmp_path: Path, playbook: str, inventory: str, description: dict[str, Any]
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``playbook`` (its text) in ``inventory`` (ini text) with ``description`` as extra
    vars; the playbook writes its answer to the file named by variable ``out_file``, whose
    path is returned with the result (the file exists only if the playbook got that far)."""
    (tmp_path / "hosts.ini").write_text(inventory)
    (tmp_path / "playbook.yml").write_text(playbook)
    (tmp_path / "fleet.json").write_text(json.dumps(description))
    out = tmp_path / "out.json"
    result = run_playbook(
        tmp_path / "playbook.yml",
        "-e", f"@{tmp_path / 'fleet.json'}",
        "-e", f"out_file={out}",
        inventory=str(tmp_path / "hosts.ini"),
    )  # fmt: skip
    return result, out


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def tree(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every file and link under root (directories excluded) -> (kind, mode, content)."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", 0, os.readlink(path).encode())
        elif path.is_file():
            out[rel] = ("file", path.stat().st_mode & 0o7777, path.read_bytes())
    return out
