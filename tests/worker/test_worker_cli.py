"""The ``beanfleet work`` command line: usage errors exit 2 with one clear line and no
traceback; ``--log-format json`` gives one JSON object per stderr line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from beanfleet.cli import main
from beanstalkd_server import free_port
from click.testing import CliRunner
from worker_support import HERE, Queue, WorkerProcess, beanfleet_argv, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tube", "work"], "expected TUBE=MODULE:FUNCTION"),
        (["--tube", "work=handlers_for_tests"], "expected TUBE=MODULE:FUNCTION"),
        (["--tube", "-bad=handlers_for_tests:record"], "invalid tube name '-bad'"),
        (["--tube", "work=no_such_module:run"], "No module named 'no_such_module'"),
        (["--tube", "work=handlers_for_tests:nothing"], "has no attribute 'nothing'"),
        (["--tube", "work=handlers_for_tests:_BALLAST"], "is not callable"),
        (
            ["--tube", "a=handlers_for_tests:record", "--tube", "a=handlers_for_tests:noop"],
            "more than one handler",
        ),
        (["--server", "nohost", "--tube", "w=handlers_for_tests:record"], "expected HOST:PORT"),
        ([], "Missing option '--tube'"),
        (["--tube", "w=handlers_for_tests:record", "--max-retries", "-1"], "--max-retries"),
        (["--tube", "w=handlers_for_tests:record", "--log-format", "xml"], "--log-format"),
        *[
            (["--tube", "w=handlers_for_tests:record", option, value], f"invalid {what} '{value}'")
            for option, what, value in [
                ("--timeout", "timeout", "nan"),
                ("--timeout", "timeout", "0"),
                ("--backoff-base", "backoff base", "nan"),
                ("--backoff-base", "backoff base", "1e308"),
                ("--backoff-base", "backoff base", "-1"),
                ("--backoff-cap", "backoff cap", "inf"),
                ("--backoff-cap", "backoff cap", "4294967296"),
                ("--max-time", "max-time", "-inf"),
                ("--max-memory", "max-memory", "nan"),
            ]
        ],
        (["--tube", "w=handlers_for_tests:record", "--max-retries", "4294967295"], "--max-retries"),
        (["--tube", "w=exits_at_import:run"], "module 'exits_at_import' called sys.exit(3)"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from beanfleet.cli import main; main()", "work", *args],
        env={**os.environ, "PYTHONPATH": str(HERE)},
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    # One line, no usage block or traceback (the group prints usage errors this way).
    [line] = result.stderr.splitlines()
    assert line.startswith("beanfleet: error: ") and message in line, result.stderr


def test_max_time_applies_while_the_server_is_unreachable(
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    # Nothing listens there: the worker reconnects with backoff, and max-time still ends it
    # (exit 0, like any recycling limit).
    worker = spawn_worker(
        "--server", f"127.0.0.1:{free_port()}", "--tube", "w=handlers_for_tests:record",
        "--max-time", "0.5",
    )  # fmt: skip
    assert worker.wait_exit(30) == 0
    lines = worker.lines()
    assert any("event=connect-failed" in line for line in lines)
    assert "worker exiting: max-time reached" in lines[-1]


def test_help_lists_the_contract() -> None:
    result = CliRunner().invoke(main, ["work", "--help"])
    assert result.exit_code == 0
    for option in (
        "--server", "--tube", "--max-retries", "--backoff-base", "--backoff-cap", "--timeout",
        "--max-jobs", "--max-time", "--max-memory", "--log-format",
    ):  # fmt: skip
        assert option in result.output


def test_server_falls_back_to_the_environment(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    job_id = queue.put("work", {"out": str(tmp_path / "out")})
    worker = spawn_worker(
        "--tube", "work=handlers_for_tests:record", "--max-jobs", "1",
        env={"BEANFLEET_SERVER": queue.server.address},
    )  # fmt: skip
    assert worker.wait_exit(10) == 0
    assert queue.state(job_id) is None


def test_json_log_format_end_to_end(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ok = queue.put("work", {"out": str(tmp_path / "out")})
    failing = queue.put("fails", {})
    poison = queue.put("work", b"{")
    worker = spawn_worker(
        "--server", queue.server.address,
        "--tube", "work=handlers_for_tests:record", "--tube", "fails=handlers_for_tests:fail",
        "--max-retries", "0", "--max-jobs", "3", "--log-format", "json",
    )  # fmt: skip
    assert worker.wait_exit(10) == 0
    records = [json.loads(line) for line in worker.lines()]  # every line parses
    jobs = {r["job"]: r for r in records if r["event"] == "job"}
    assert jobs[ok]["outcome"] == "deleted" and jobs[ok]["attempt"] == 1
    assert jobs[ok]["tube"] == "work" and jobs[ok]["duration"] >= 0
    assert jobs[failing]["outcome"] == "buried" and jobs[failing]["tube"] == "fails"
    assert "ValueError: boom" in jobs[failing]["reason"]
    assert "Traceback" in jobs[failing]["traceback"]
    assert jobs[poison]["outcome"] == "buried" and "not valid JSON" in jobs[poison]["reason"]
    assert records[-1]["event"] == "stopped"


def test_handler_module_found_from_the_working_directory(queue: Queue, tmp_path: Path) -> None:
    (tmp_path / "local_tasks.py").write_text(
        "def run(data, job):\n    open(data['out'], 'w').write(str(job.id))\n"
    )
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    # The console script, not `python -c`: the latter puts the cwd on sys.path by itself.
    result = subprocess.run(
        [*beanfleet_argv(), "work",
         "--server", queue.server.address, "--tube", "work=local_tasks:run", "--max-jobs", "1"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    wait_for(out.exists, 5, "the handler's file")
    assert out.read_text() == str(job_id)
