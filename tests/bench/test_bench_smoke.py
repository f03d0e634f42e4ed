"""`make bench` cannot rot: run the whole suite once at ``--size tiny`` into a temp dir and
check that it wrote a complete table.  No timings are asserted: these are benchmarks."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from report import parse_table

FIGURES = {str(n) for n in range(1, 11)}
# Rows that may legitimately be zero or negative: RSS growth, and lateness (a job that
# started early would be a finding, not a broken benchmark).
SIGNED = ("growth", "lateness")


@pytest.mark.timeout(300)
def test_tiny_run_writes_a_complete_table(tmp_path: Path) -> None:
    for module in ("matplotlib", "beanstalkc"):
        __import__(module)  # a clear ImportError: both are in requirements-dev.txt
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--size",
            "tiny",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    md = (tmp_path / "bench.md").read_text()
    for key in ("CPU", "Cores", "RAM", "Kernel", "Python", "beanstalkd", "Date"):
        assert f"| {key} |" in md, key
    rows = parse_table(md)
    assert {r["#"] for r in rows} == FIGURES
    for row in rows:
        value = float(row["Value"].replace(",", ""))
        assert math.isfinite(value), row
        if not any(word in row["Measurement"] for word in SIGNED):
            assert value > 0, row
        if row["Ratio"]:
            assert float(row["Ratio"].split("×")[0]) > 0, row

    # The real worker and producer must be in the table, not just the baselines.
    labels = " ".join(r["Measurement"] for r in rows)
    assert "beanfleet work" in labels
    assert "put_many" in labels
    assert "not measured" not in md

    png = (tmp_path / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000


@pytest.mark.timeout(120)
def test_exporter_scrape_script_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "exporter_scrape.py"), "--tubes", "3", "--jobs", "30"],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 tubes, 30 ready jobs" in proc.stdout
    assert "later scrapes (median of 9)" in proc.stdout
