"""The Grafana dashboard's panel queries with its variables substituted: the promtool test
(tests/prometheus) and the fleet test against the real Prometheus evaluate the same list."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[1] / "grafana" / "beanfleet-dashboard.json"


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def queries(dashboard: Mapping[str, Any], variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, ``variables`` substituted
    (longest name first: ``$__rate_interval`` before a shorter name it starts like)."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(name, value)
            out.append((panel["title"], expr))
    return out
