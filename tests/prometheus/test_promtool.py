"""The alert rules and the scrape config, checked and unit-tested by promtool (Debian's
`prometheus` package): the committed example render (kept in sync with templates/ by
tests/deploy/test_committed_render.py), its unit tests in rules_test.yml, and a render of
odd settings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from beanfleet.fleet.render import render

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RENDERED = REPO / "prometheus" / "etc" / "prometheus"

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing: apt-get install prometheus"
)


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_rules_and_config_check() -> None:
    rules = promtool("check", "rules", RENDERED / "beanfleet.rules.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = promtool("check", "config", "--syntax-only", RENDERED / "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_has_unit_tests_firing_and_not() -> None:
    result = promtool("test", "rules", HERE / "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load((RENDERED / "beanfleet.rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((HERE / "rules_test.yml").read_text())["tests"]
    checks = [c for t in tests for c in t["alert_rule_test"]]
    for alert in alerts:
        mine = [c for c in checks if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert}: never tested firing"
        assert any(not c["exp_alerts"] for c in mine), f"{alert}: never tested not firing"


def test_the_unit_tests_catch_a_wrong_rule(tmp_path: Path) -> None:
    rules = (RENDERED / "beanfleet.rules.yml").read_text()
    broken = rules.replace(
        'beanfleet_tube_jobs{state="buried"} > 0', 'beanfleet_tube_jobs{state="buried"} > 5'
    )
    assert broken != rules
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "beanfleet.rules.yml").write_text(broken)
    test = (
        (HERE / "rules_test.yml")
        .read_text()
        .replace("../../prometheus/etc/prometheus/beanfleet.rules.yml", "rules/beanfleet.rules.yml")
    )
    (tmp_path / "rules_test.yml").write_text(test)
    result = promtool("test", "rules", tmp_path / "rules_test.yml")
    assert result.returncode != 0
    assert "BeanstalkdJobsBuried" in result.stdout + result.stderr


def test_odd_tube_and_pool_names_still_make_valid_rules(tmp_path: Path) -> None:
    description = {
        "beanfleet_server": "[fd00::10]:11301",
        "beanstalkd_firewall_allow": [],
        "beanfleet_pools": [
            {"name": "odd-pool_1", "tubes": {"a$b;c": "m:f", "(x)": "m:g"}, "processes": 3},
        ],
        "monitoring_enabled": True,
        "monitoring_scrape_allow": [],
        "monitoring_worker_hosts": [],
        "monitoring_tube_oldest_ready_age": {"a$b;c": 5, "(x)": 60, "x.y+z/w": 9},
        "monitoring_pool_failure_rate": {"odd-pool_1": 1},
        "monitoring_alert_for": {"BeanstalkdDown": "1h30m"},
    }
    render(description, tmp_path, prometheus=True)
    rendered = tmp_path / "etc" / "prometheus"
    rules = promtool("check", "rules", rendered / "beanfleet.rules.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 10 rules found" in rules.stdout  # 5 + 3 tube thresholds + 2 for the pool
    config = promtool("check", "config", "--syntax-only", rendered / "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    text = (rendered / "prometheus.yml").read_text()
    assert '"[fd00::10]:9650"' in text and "targets:\n          []" in text
