"""What every figure gets: the size, a scratch directory, and what of beanfleet exists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench_common import Size


@dataclass
class Ctx:
    size: Size
    tmp: Path
    log_dir: Path
    have_beanfleet: bool
    beanfleet_missing: str
    have_producer: bool
    producer_missing: str
