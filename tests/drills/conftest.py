"""The failure drills (drills/) at CI size: each drill runs once per module, the tests
assert on its result."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DRILLS = Path(__file__).resolve().parents[2] / "drills"
if str(DRILLS) not in sys.path:
    sys.path.insert(0, str(DRILLS))


@pytest.fixture(scope="module")
def run_drill(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], list[Any]]:
    """Run a drill module (by module name) at CI size, once per test module."""
    cache: dict[str, list[Any]] = {}

    def run(module_name: str) -> list[Any]:
        if module_name not in cache:
            module = importlib.import_module(module_name)
            cache[module_name] = module.run("ci", tmp_path_factory.mktemp(module_name))
        return cache[module_name]

    return run
