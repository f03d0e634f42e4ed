"""The ``beanfleet`` command as a real process: what an operator runs, with a hard bound."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_SCRIPT = Path(sys.executable).with_name("beanfleet")
BEANFLEET = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "import sys; from beanfleet.cli import main; sys.exit(main())"]
)


@dataclass(frozen=True)
class Ran:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def one_error_line(self) -> str:
        """stderr as one ``beanfleet: error:`` line (never a traceback); the line."""
        assert "Traceback" not in self.err, self.err
        lines = self.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("beanfleet: error: "), self.err
        return lines[0]


def run(
    *args: str,
    limit: float = 20.0,
    stdin: bytes = b"",
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Ran:
    """``beanfleet ARGS``; a run longer than ``limit`` seconds fails the test (a hang); a
    non-zero exit does not raise (``Ran.code``).  ``env``: its whole environment (default:
    this process's)."""
    done = subprocess.run(
        [*BEANFLEET, *args], input=stdin, capture_output=True, timeout=limit, cwd=cwd, env=env
    )
    return Ran(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))
