"""What every figure gets: the size, a scratch directory, and what of beanfleet exists."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench_common import Size, settle
from oldcode import OldCode


@dataclass
class Ctx:
    size: Size
    tmp: Path
    log_dir: Path
    have_beanfleet: bool
    beanfleet_missing: str
    have_producer: bool
    producer_missing: str
    # Seconds, in all, this run may spend waiting for other processes to go quiet before
    # a measurement (at most 5 s each time), and re-running disturbed runs (figures 1, 2).
    quiet_budget: float = 0.0
    retries: int = 0
    waited: float = 0.0
    repeated: int = 0
    old: OldCode | None = None  # the code before the redesign (figures 1, 9, 10), if asked

    def settle(self) -> float:
        """Wait for a quiet machine while the budget lasts; the busy % seen at the end."""
        left = self.quiet_budget - self.waited
        if left <= 0:
            return 0.0
        t0 = time.monotonic()
        busy = settle(min(5.0, left))
        self.waited += time.monotonic() - t0
        return busy

    def may_repeat(self) -> bool:
        """Whether a disturbed run may be repeated (count it if so)."""
        if self.repeated >= self.retries or self.waited >= self.quiet_budget:
            return False
        self.repeated += 1
        return True
