"""The digest of a wheelhouse: whether a host's venv needs installing again.

May import: the standard library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def wheelhouse_digest(directory: str, packages: Iterable[str]) -> str:
    """A digest of the wheels in ``directory`` and the packages to install from them: when
    it is unchanged since the last install, the hosts' venvs need nothing ("" when the
    directory does not exist)."""
    root = Path(directory)
    if not directory or not root.is_dir():
        return ""
    digest = hashlib.sha256()
    for name in sorted(packages):
        digest.update(f"package {name}\n".encode())
    for wheel in sorted(root.iterdir()):
        if wheel.is_file():
            digest.update(
                f"file {wheel.name} {hashlib.sha256(wheel.read_bytes()).hexdigest()}\n".encode()
            )
    return digest.hexdigest()
