"""Fixtures of the deployment tests (helpers live in deploy_helpers.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from deploy_helpers import EXAMPLE_FLEET, load_yaml


@pytest.fixture(scope="session")
def example_fleet() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(EXAMPLE_FLEET)
    return data


@pytest.fixture(scope="session")
def rendered_example(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Path]]:
    """The example fleet rendered by `beanfleet render` for each manager, and its
    Prometheus files (`--prometheus`)."""
    from beanfleet.fleet.render import render

    out = {}
    for manager in ("systemd", "supervisor"):
        target = tmp_path_factory.mktemp(f"render-{manager}")
        render(EXAMPLE_FLEET, target, manager)
        out[manager] = target
    target = tmp_path_factory.mktemp("render-prometheus")
    render(EXAMPLE_FLEET, target, prometheus=True)
    out["prometheus"] = target
    yield out
