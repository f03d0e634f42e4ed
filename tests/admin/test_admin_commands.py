"""``beanfleet peek``, ``kick``, ``delete`` and ``pause`` against a real beanstalkd."""

from __future__ import annotations

import json

import greenstalk
import pytest
from admin_helpers import bury, cli, put
from beanstalkd_server import Beanstalkd

# -- peek --------------------------------------------------------------------------------------


def test_peek_each_state(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    low = put(client, "t", b'{"low": 1}', priority=5000)
    high = put(client, "t", b'{"high": 1}', priority=1)
    client.use("t")
    delayed = client.put(b'{"later": 1}', delay=300)
    client.watch("t")
    bury(client, low)
    cases = [("--ready", high, '{"high": 1}'), ("--delayed", delayed, '{"later": 1}'),
             ("--buried", low, '{"low": 1}')]  # fmt: skip
    for flag, job_id, body in cases:
        code, out, err = cli("peek", "-s", beanstalkd.address, "-t", "t", flag)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == f"id: {job_id}"
        assert "tube: t" in lines
        assert lines[-2:] == ["body:", body]
    assert client.stats_job(high)["state"] == "ready"
    assert client.stats_job(low)["state"] == "buried"


def test_peek_defaults_to_ready_and_by_job_id_as_json(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    job_id = put(client, "t", '{"é": 1}'.encode())
    code, out, _ = cli("peek", "-s", beanstalkd.address, "-t", "t")
    assert code == 0
    assert out.startswith(f"id: {job_id}\n")
    code, out, _ = cli("peek", "-s", beanstalkd.address, "--job", str(job_id), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["id"] == job_id
    assert data["body"] == '{"é": 1}'
    assert data["stats"]["state"] == "ready"
    assert data["stats"]["tube"] == "t"


def test_peek_errors(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    put(client, "t", b"1")
    server = ["-s", beanstalkd.address]
    assert cli("peek", *server, "-t", "t", "--buried")[1:] == (
        "",
        "beanfleet: error: no buried job in tube 't'\n",
    )
    assert cli("peek", *server, "--job", "999")[2] == "beanfleet: error: job 999 not found\n"
    assert cli("peek", *server, "-t", "nope")[2] == (
        f"beanfleet: error: unknown tube 'nope' on {beanstalkd.address}\n"
    )
    for usage in (["peek"], ["peek", "-t", "t", "--job", "1"], ["peek", "--job", "1", "--ready"],
                  ["peek", "--job", "0"], ["peek", "-t", "bad name"]):  # fmt: skip
        code, out, _ = cli(*usage, *server)
        assert (code, out) == (2, ""), usage


# -- kick --------------------------------------------------------------------------------------


def test_kick_tube_moves_buried_before_delayed(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    ids = [put(client, "t", b"%d" % i) for i in range(3)]
    client.use("t")
    delayed = client.put(b"later", delay=300)
    client.watch("t")
    for job_id in ids:
        bury(client, job_id)
    code, out, _ = cli("kick", "-s", beanstalkd.address, "-t", "t")
    assert (code, out) == (0, "kicked 1 job in tube 't'\n")
    code, out, _ = cli("kick", "-s", beanstalkd.address, "-t", "t", "--count", "10")
    assert (code, out) == (0, "kicked 2 jobs in tube 't'\n")
    assert [client.stats_job(i)["state"] for i in ids] == ["ready"] * 3
    assert client.stats_job(delayed)["state"] == "delayed"
    code, out, _ = cli("kick", "-s", beanstalkd.address, "-t", "t", "--count", "10")
    assert (code, out) == (0, "kicked 1 job in tube 't'\n")
    assert client.stats_job(delayed)["state"] == "ready"


def test_kick_job(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    first, second = put(client, "t", b"1"), put(client, "t", b"2")
    client.watch("t")
    bury(client, first)
    bury(client, second)
    code, out, _ = cli("kick", "-s", beanstalkd.address, "--job", str(second))
    assert (code, out) == (0, f"kicked job {second}\n")
    assert client.stats_job(second)["state"] == "ready"
    assert client.stats_job(first)["state"] == "buried"
    code, out, err = cli("kick", "-s", beanstalkd.address, "--job", str(second))
    assert (code, out) == (1, "")
    assert err == f"beanfleet: error: job {second} not found, or neither buried nor delayed\n"


def test_kick_errors(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    put(client, "t", b"1")
    code, _, err = cli("kick", "-s", beanstalkd.address, "-t", "nope")
    assert code == 1
    assert err == f"beanfleet: error: unknown tube 'nope' on {beanstalkd.address}\n"
    assert "nope" not in client.tubes()  # checking did not create it
    for usage in (
        ["kick"],
        ["kick", "-t", "t", "--job", "1"],
        ["kick", "-t", "t", "--count", "0"],
    ):
        assert cli(*usage, "-s", beanstalkd.address)[0] == 2, usage


# -- delete ------------------------------------------------------------------------------------


def test_delete_job(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    ready = put(client, "t", b"1")
    buried = put(client, "t", b"2")
    client.watch("t")
    bury(client, buried)
    for job_id in (ready, buried):
        code, out, _ = cli("delete", "-s", beanstalkd.address, "--job", str(job_id))
        assert (code, out) == (0, f"deleted job {job_id}\n")
        with pytest.raises(greenstalk.NotFoundError):
            client.stats_job(job_id)


def test_delete_missing_or_reserved_elsewhere(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    job_id = put(client, "t", b"1")
    client.reserve_job(job_id)
    code, out, err = cli("delete", "-s", beanstalkd.address, "--job", str(job_id))
    assert (code, out) == (1, "")
    assert err == (f"beanfleet: error: job {job_id} not found, or reserved by another connection\n")
    assert client.stats_job(job_id)["state"] == "reserved"
    assert cli("delete", "-s", beanstalkd.address)[0] == 2


# -- pause -------------------------------------------------------------------------------------


def test_pause_and_resume(beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]) -> None:
    put(client, "t", b"1")
    code, out, _ = cli("pause", "-s", beanstalkd.address, "-t", "t", "--seconds", "120")
    assert (code, out) == (0, "paused tube 't' for 120s\n")
    stats = client.stats_tube("t")
    assert stats["pause"] == 120
    assert stats["pause-time-left"] > 100
    client.watch("t")
    with pytest.raises(greenstalk.TimedOutError):
        client.reserve(timeout=0)
    code, out, _ = cli("pause", "-s", beanstalkd.address, "-t", "t", "--seconds", "0")
    assert (code, out) == (0, "resumed tube 't'\n")
    assert client.reserve(timeout=1).body == b"1"


def test_pause_errors(beanstalkd: Beanstalkd) -> None:
    code, _, err = cli("pause", "-s", beanstalkd.address, "-t", "nope", "--seconds", "5")
    assert code == 1
    assert err == f"beanfleet: error: unknown tube 'nope' on {beanstalkd.address}\n"
    assert cli("pause", "-s", beanstalkd.address, "-t", "default")[0] == 2
    assert cli("pause", "-s", beanstalkd.address, "-t", "t", "--seconds", "-1")[0] == 2
