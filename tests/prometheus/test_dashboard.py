"""Every query of the Grafana dashboard parses and returns data.

Grafana cannot run here; promtool's rule unit tests evaluate PromQL (promql_expr_test), so
each panel query, with the dashboard variables substituted, is evaluated against input
series shaped like the exporter's and the worker endpoint's, and must return at least one
real (not NaN) sample.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dashboard import load, queries

# A Grafana variable's value for the check: one tube, one pool, a rate window.
VARIABLES = {"$__rate_interval": "5m", "$tube": "emails", "$pool": "emails"}

B = 'job="beanstalkd", instance="q1:9650"'
W = 'job="beanfleet_workers", instance="w1:9651", pool="emails", tube="emails"'
SERIES = {
    f"beanfleet_up{{{B}}}": "1x30",
    **{
        f'beanfleet_tube_jobs{{{B}, tube="emails", state="{s}"}}': "3x30"
        for s in ("ready", "reserved", "delayed", "buried")
    },
    f'beanfleet_tube_oldest_ready_age_seconds{{{B}, tube="emails"}}': "0+60x30",
    f'beanfleet_tube_watching_connections{{{B}, tube="emails"}}': "2x30",
    f'beanfleet_tube_jobs_created_total{{{B}, tube="emails"}}': "0+66x30",
    f"beanfleet_binlog_filesystem_avail_bytes{{{B}}}": "50x30",
    f"beanfleet_binlog_filesystem_size_bytes{{{B}}}": "100x30",
    f'beanfleet_worker_jobs_total{{{W}, outcome="deleted"}}': "0+60x30",
    f'beanfleet_worker_jobs_total{{{W}, outcome="retried"}}': "0+6x30",
    f'beanfleet_worker_job_duration_seconds_bucket{{{W}, le="0.1"}}': "0+30x30",
    f'beanfleet_worker_job_duration_seconds_bucket{{{W}, le="1.0"}}': "0+60x30",
    f'beanfleet_worker_job_duration_seconds_bucket{{{W}, le="+Inf"}}': "0+66x30",
    f'beanfleet_worker_job_wait_seconds_bucket{{{W}, le="1.0"}}': "0+1x30",
    f'beanfleet_worker_job_wait_seconds_bucket{{{W}, le="+Inf"}}': "0+1x30",
    'beanfleet_worker_processes{job="beanfleet_workers", pool="emails"}': "2x30",
}

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing: apt-get install prometheus"
)


def test_the_dashboard_covers_what_operators_look_at() -> None:
    dashboard = load()
    text = " ".join(expr for _, expr in queries(dashboard, VARIABLES))
    for needed in (
        'state="ready"', 'state="reserved"', 'state="buried"',
        "beanfleet_tube_oldest_ready_age_seconds",
        "rate(beanfleet_worker_jobs_total",  # throughput and failure rate
        "histogram_quantile(0.95, sum by (pool, le) (rate(beanfleet_worker_job_duration",
        "beanfleet_worker_processes",
    ):  # fmt: skip
        assert needed in text, needed
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert names == {"datasource", "tube", "pool"}
    for _, expr in queries(dashboard, VARIABLES):
        assert "$" not in expr, f"variable left in {expr}"


def evaluate(dashboard: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """promtool evaluating every query of ``dashboard`` against :data:`SERIES`."""
    tests = [
        {
            # One sample worth 1 when the query returns any real (non-NaN) value.
            "expr": f"clamp_max(count(({expr}) > -Inf), 1)",
            "eval_time": "20m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
        for _, expr in queries(dashboard, VARIABLES)
    ]
    unit = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
                "promql_expr_test": tests,
            }
        ],
    }
    path = tmp_path / "dashboard_test.yml"
    path.write_text(yaml.safe_dump(unit, sort_keys=False))
    return subprocess.run(
        ["promtool", "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_panel_query_parses_and_returns_data(tmp_path: Path) -> None:
    dashboard = load()
    assert len(queries(dashboard, VARIABLES)) >= 10
    result = evaluate(dashboard, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


@pytest.mark.parametrize(
    "expr", ["beanfleet_no_such_metric", "sum by (tube) (beanfleet_tube_jobs{state=ready})"]
)
def test_a_query_without_data_or_that_does_not_parse_fails(tmp_path: Path, expr: str) -> None:
    dashboard = load()
    dashboard["panels"][0]["targets"][0]["expr"] = expr
    result = evaluate(dashboard, tmp_path)
    assert result.returncode != 0
