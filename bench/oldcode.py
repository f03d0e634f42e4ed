"""The code before the redesign, installed in a second venv, so one run measures old and new.

``make bench`` passes ``--old-rev`` (the Makefile's ``BENCH_OLD_REV``; ``auto`` by default,
``none`` to skip).  ``auto`` is the parent of the commit that created
``worker/src/beanfleet/wire/`` (issue 19's move into subpackages): the last commit of the
flat package, which stays the same after the branch is merged.  The worker (and the
templates its wheel carries) at that revision are taken with ``git archive`` and installed
with pip into ``.venv-old``; a stamp file names the commit, so a second run reuses it.

The bench drives both installs through the CLI (``beanfleet work``) and imports only root
names from ``beanfleet``, so the same bench code runs either.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench_common import ROOT

VENV = ROOT / ".venv-old"
MARKER = "worker/src/beanfleet/wire/__init__.py"


@dataclass(frozen=True)
class OldCode:
    rev: str  # the full commit id
    exe: list[str]  # argv prefix of its `beanfleet` console script

    @property
    def short(self) -> str:
        return self.rev[:7]


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def resolve(rev: str) -> str:
    """The commit id ``rev`` names; ``auto``: the commit before the move into subpackages."""
    if rev == "auto":
        added = _git("log", "--format=%H", "--diff-filter=A", "--", MARKER).splitlines()
        if not added:
            raise RuntimeError(f"no commit adds {MARKER}: give --old-rev explicitly")
        rev = added[-1] + "^"
    return _git("rev-parse", "--verify", f"{rev}^{{commit}}")


def install(rev: str, venv: Path = VENV) -> OldCode:
    """``.venv-old`` with the worker at ``rev`` (reused when its stamp names the same commit)."""
    sha = resolve(rev)
    exe = venv / "bin" / "beanfleet"
    stamp = venv / ".rev"
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == sha:
        return OldCode(sha, [str(exe)])
    print(f"installing the old code ({sha[:7]}) into {venv.name} ...", file=sys.stderr)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", sha, "worker", "templates"],
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="beanfleet-old-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", str(Path(tmp) / "worker")],
            check=True,
        )
    stamp.write_text(sha + "\n")
    return OldCode(sha, [str(exe)])
