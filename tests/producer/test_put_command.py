"""``beanfleet put`` through click's CliRunner against a real beanstalkd."""

from __future__ import annotations

import json

import greenstalk
import pytest
from beanfleet.cli import main
from beanstalkd_server import Beanstalkd, free_port
from click.testing import CliRunner


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_put_prints_the_job_id(server_address: str, inspector: greenstalk.Client[bytes]) -> None:
    code, out, err = run(
        "put",
        "--server",
        server_address,
        "--tube",
        "jobs",
        "-p",
        "critical",
        '{"a": [1, 2]}',
    )
    assert (code, err) == (0, "")
    job_id = int(out)
    assert inspector.peek(job_id).body == b'{"a":[1,2]}'
    stats = inspector.stats_job(job_id)
    assert (stats["tube"], stats["pri"], stats["ttr"]) == ("jobs", 0, 60)


def test_put_options(server_address: str, inspector: greenstalk.Client[bytes]) -> None:
    code, out, _ = run(
        "put", "-s", server_address, "-t", "jobs", "--priority", "5", "--delay", "30",
        "--ttr", "9", '"text"',
    )  # fmt: skip
    assert code == 0
    stats = inspector.stats_job(int(out))
    assert (stats["pri"], stats["delay"], stats["ttr"], stats["state"]) == (
        5,
        30,
        9,
        "delayed",
    )


def test_server_falls_back_to_the_environment(
    server_address: str,
    inspector: greenstalk.Client[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BEANFLEET_SERVER", server_address)
    code, out, _ = run("put", "-t", "env", "1")
    assert code == 0
    assert inspector.stats_job(int(out))["tube"] == "env"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "jobs", "{not json"], "Invalid value for 'JSON': invalid JSON"),
        (["-t", "jobs", "-p", "urgent", "1"], "invalid priority 'urgent'"),
        (["-t", "jobs", "-p", "-1", "1"], "invalid priority"),
        (["-t", "jobs", "-p", "\u0663", "1"], "invalid priority '\u0663'"),  # ARABIC-INDIC 3
        (["-t", "jobs", "-p", " 5", "1"], "invalid priority ' 5'"),
        (["-t", "jobs", "-p", "5 ", "1"], "invalid priority '5 '"),
        (["-t", "jobs", "-p", "\u00b3", "1"], "invalid priority"),  # superscript 3
        (["-t", "jobs", "--delay", "-5", "1"], "--delay"),
        (["-t", "jobs", "--ttr", "0", "1"], "invalid ttr 0: must be 1..4294967295 seconds"),
        (["-t", "-bad", "1"], "invalid tube name"),
        (["1"], "Missing option '--tube'"),
    ],
)
def test_usage_errors_exit_2(
    server_address: str,
    inspector: greenstalk.Client[bytes],
    args: list[str],
    message: str,
) -> None:
    code, out, err = run("put", "-s", server_address, *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert inspector.stats()["cmd-put"] == 0


def test_stdin_json_lines_are_bulk_put(
    server_address: str, inspector: greenstalk.Client[bytes]
) -> None:
    lines = [json.dumps({"n": i}) for i in range(1500)]
    stdin = "\n".join(lines[:700]) + "\n\n  \n" + "\n".join(lines[700:]) + "\n"
    code, out, err = run("put", "-s", server_address, "-t", "bulk", "-p", "low", "-", stdin=stdin)
    assert (code, out, err) == (0, "1500\n", "")
    assert inspector.stats_tube("bulk")["current-jobs-ready"] == 1500
    inspector.watch("bulk")
    first = inspector.reserve(timeout=1)
    assert first.body == b'{"n":0}'
    assert inspector.stats_job(first)["pri"] == 2048


def test_bad_stdin_line_fails_before_anything_is_enqueued(
    server_address: str, inspector: greenstalk.Client[bytes]
) -> None:
    code, out, err = run("put", "-s", server_address, "-t", "bulk", "-", stdin='{"a":1}\n{oops\n')
    assert code == 1
    assert out == ""
    assert err.startswith("beanfleet: error: stdin line 2: invalid JSON")
    assert err.count("\n") == 1
    assert inspector.stats()["cmd-put"] == 0


def test_too_big_job_is_a_one_line_error(small_server: Beanstalkd) -> None:
    code, _, err = run("put", "-s", small_server.address, "-t", "t", json.dumps("x" * 200))
    assert code == 1
    assert err == ("beanfleet: error: job body is 202 bytes, server max-job-size is 100 bytes\n")
    stdin = '1\n\n"' + "x" * 200 + '"\n'
    code, _, err = run("put", "-s", small_server.address, "-t", "t", "-", stdin=stdin)
    assert code == 1
    assert err == (
        "beanfleet: error: stdin line 3: job body is 202 bytes, server max-job-size is 100 bytes\n"
    )
    with greenstalk.Client(small_server.pair) as client:
        assert client.stats()["cmd-put"] == 0


def test_connection_refused_is_a_one_line_error() -> None:
    port = free_port()
    code, out, err = run("put", "-s", f"127.0.0.1:{port}", "-t", "t", "1")
    assert code == 1
    assert out == ""
    assert err == (
        f"beanfleet: error: cannot connect to beanstalkd at 127.0.0.1:{port}: connection refused\n"
    )
