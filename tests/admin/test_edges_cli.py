"""Issue 18 edges of the admin CLI against one real beanstalkd, run as real ``beanfleet``
processes: a frozen server, hostile job bodies, huge numbers, malformed addresses."""

from __future__ import annotations

import base64
import json
import signal
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import greenstalk
import pytest
from admin_helpers import bury, put
from beanfleet.bounds import parse_int
from beanfleet.display import for_terminal
from beanfleet.errors import ConfigError
from beanfleet.names import canonical_server, parse_server
from beanstalkd_server import Beanstalkd
from cli_process import run
from hypothesis import given
from hypothesis import strategies as st

# A body as a hostile producer writes it: retitle the window (OSC ... BEL), clear the screen,
# CR + a fake ID over the row's own, backspace, DEL, a C1 CSI, a bidi override, and a byte
# that is not UTF-8.
HOSTILE = b'{"x": "\x1b]0;pwned\x07\x1b[2J\r999  \x08\x7f\xc2\x9b\xe2\x80\xaeabc"}\xff'


def unsafe_chars(text: str, allowed: str = "") -> list[str]:
    return [
        c
        for c in text
        if c not in allowed and unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp", "Cs"}
    ]


@pytest.fixture
def frozen(beanstalkd: Beanstalkd) -> Iterator[Beanstalkd]:
    """The server with a buried job in tube t, then stopped (SIGSTOP) for the test."""
    with greenstalk.Client(beanstalkd.pair, encoding=None) as client:
        bury(client, put(client, "t", b"{}"))
    assert beanstalkd.proc is not None
    beanstalkd.proc.send_signal(signal.SIGSTOP)
    try:
        yield beanstalkd
    finally:
        beanstalkd.proc.send_signal(signal.SIGCONT)


@pytest.mark.parametrize(
    "command",
    [
        ["stats"],
        ["peek", "-t", "t", "--buried"],
        ["peek", "--job", "1"],
        ["buried", "-t", "t"],
        ["kick", "-t", "t"],
        ["pause", "-t", "t", "--seconds", "5"],
    ],
    ids="-".join,
)
def test_a_frozen_server_is_reported_not_waited_for(frozen: Beanstalkd, command: list[str]) -> None:
    """Issue 18 item 8: with its only server frozen (SIGSTOP: it accepts connections, never
    answers) each admin command gives up after --timeout, names the server, exits 1."""
    done = run(*command, "-s", frozen.address, "--timeout", "1", limit=15)
    assert done.code == 1
    line = done.one_error_line()
    assert f"no reply from beanstalkd at {frozen.address} within 1s" in line


def test_peek_and_buried_show_control_bytes_as_escapes(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    """Issue 18 item 13: a body's ESC, BEL, CR, BS, DEL, C1 and bidi characters reach the
    terminal as visible escapes (and a byte that is not UTF-8 as \\xff), in peek and in the
    BODY column of buried, so the row's ID column cannot be overwritten."""
    job_id = put(client, "t", HOSTILE)
    bury(client, job_id)
    peeked = run("peek", "-s", beanstalkd.address, "-t", "t", "--buried")
    listed = run("buried", "-s", beanstalkd.address, "-t", "t")
    assert peeked.code == listed.code == 0, (peeked.err, listed.err)
    for done, allowed in ((peeked, "\n"), (listed, "\n")):
        assert not unsafe_chars(done.out.decode("utf-8"), allowed)
    body_line = peeked.text.split("body:\n", 1)[1]
    assert body_line == (
        '{"x": "\\x1b]0;pwned\\x07\\x1b[2J\\r999  \\x08\\x7f\\x9b\\u202eabc"}\\xff\n'
    )
    row = listed.text.splitlines()[1]
    assert row.split()[0] == str(job_id) and "\\x1b]0;pwned\\x07" in row


def test_json_output_keeps_the_exact_bytes(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes]
) -> None:
    """Issue 18 item 13: --json gives the exact body in body_base64 (always); body is the
    text for a UTF-8 body (as before, control characters JSON-escaped) and null when the
    bytes are not UTF-8 (no U+FFFD stand-in)."""
    text_body = '{"é": "\x1b[2J\r"}'.encode()
    for body in (HOSTILE, text_body):
        bury(client, put(client, "t", body))
    peeked = run("peek", "-s", beanstalkd.address, "-t", "t", "--buried", "--json")
    listed = run("buried", "-s", beanstalkd.address, "-t", "t", "--json")
    assert peeked.code == listed.code == 0
    assert not unsafe_chars(peeked.text + listed.text, "\n")  # JSON escapes them
    first = json.loads(peeked.out)
    assert first["body"] is None and base64.b64decode(first["body_base64"]) == HOSTILE
    hostile, text = json.loads(listed.out)["jobs"]
    assert hostile["body"] is None and base64.b64decode(hostile["body_base64"]) == HOSTILE
    assert text["body"] == text_body.decode() and base64.b64decode(text["body_base64"]) == (
        text_body
    )


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_worker_log_lines_escape_job_bytes_quoted_by_a_handler(
    beanstalkd: Beanstalkd, client: greenstalk.Client[bytes], tmp_path: Path, log_format: str
) -> None:
    """Issue 18 item 13: a handler's error that quotes its job (ValueError(data)) reaches the
    worker's log line with ESC, BEL, CR, DEL, C1 and bidi characters escaped, in both log
    formats (JSON stays valid and keeps the value)."""
    (tmp_path / "quoting.py").write_text("def fail(data, job):\n    raise ValueError(data)\n")
    text = "\x1b]0;pwned\x07\x1b[2J\r\x7f\x9b\u202eabc"
    put(client, "t", json.dumps(text).encode())
    done = run(
        *("work", "-s", beanstalkd.address, "--tube", "t=quoting:fail", "--max-jobs", "1"),
        *("--max-retries", "0", "--log-format", log_format, "--state-dir", str(tmp_path)),
        cwd=tmp_path,
    )
    assert done.code == 0, done.err
    (line,) = [line for line in done.err.splitlines() if "outcome" in line]
    assert not unsafe_chars(done.err, "\n")
    if log_format == "json":
        assert f"ValueError: {text} (quoting.py:2 in fail)" in json.loads(line)["reason"]
    else:
        assert "\\u001b]0;pwned\\u0007" in line and "buried" in line


@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_escaped_text_never_holds_a_control_character(body: bytes) -> None:
    """Issue 18 item 13: whatever the bytes, the shown text has no control, format or
    separator character (with keep="\\n", no other); text without any is shown unchanged."""
    assert not unsafe_chars(for_terminal(body))
    assert not unsafe_chars(for_terminal(body, keep="\n"), "\n")
    text = body.decode("utf-8", "replace")
    if "\\" not in text and "\ufffd" not in text and not unsafe_chars(text):
        assert for_terminal(body) == text


HUGE = "9" * 5000  # past Python's 4,300-digit limit for int()


@pytest.mark.parametrize(
    "args",
    [
        ["peek", "--job", HUGE],
        ["peek", "--job", str(2**64)],
        ["stats", "-s", f"127.0.0.1:{HUGE}"],
        ["exporter", "--listen", f"127.0.0.1:{HUGE}"],
        ["metrics-endpoint", "--dir", "{tmp}", "--listen", f":{HUGE}"],
        ["kick", "-t", "t", "--count", HUGE],
        ["kick", "-t", "t", "--count", str(2**64)],  # was beanstalkd's BAD_FORMAT, exit 1
        ["kick", "-t", "t", "--count", str(2**32)],  # beanstalkd would wrap it to "kick 0"
        ["buried", "-t", "t", "--after-id", HUGE],
        ["pause", "-t", "t", "--seconds", HUGE],
        ["work", "--tube", "t=json:loads", "--max-jobs", str(2**64)],  # was exit 1
        ["work", "--tube", "t=json:loads", "--max-retries", HUGE],
        ["put", "-t", "t", "--delay", HUGE, "{}"],
    ],
    ids=lambda args: " ".join(a[:12] for a in args),
)
def test_huge_numbers_are_one_line_usage_errors(
    beanstalkd: Beanstalkd, tmp_path: Path, args: list[str]
) -> None:
    """Issue 18 item 14: a number beyond what beanstalkd (or Python's int()) takes, in any
    option, is a usage error: exit 2, one short line naming the option, no traceback."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    server = [] if args[0] in ("exporter", "metrics-endpoint") else ["-s", beanstalkd.address]
    done = run(*args, *server, limit=15)
    assert done.code == 2, done.err
    line = done.one_error_line()
    assert len(line) < 300


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::1:11300", "needs brackets"),
        ("[::1:11300", "expected [IPV6]:PORT"),
        ("[10.0.0.1]:11300", "expected [IPV6]:PORT"),
        ("foo bar:11300", "is not a host name or IP address"),
        ("queue..example:11300", "is not a host name or IP address"),
        ("999.1.1.1:11300", "not a valid IPv4 address"),
        ("10.0.0.1 x:11300", "is not a host name or IP address"),
        ("queue:0", "port out of range"),
    ],
)
def test_malformed_addresses_are_usage_errors(address: str, reason: str) -> None:
    """Issue 18 item 16: an address that cannot be one (IPv6 without brackets, spaces, empty
    labels, a bad IPv4) is a usage error (exit 2), not "cannot resolve host" (exit 1)."""
    done = run("stats", "-s", address, limit=15)
    assert done.code == 2
    assert reason in done.one_error_line()


def test_one_server_spelled_two_ways_is_refused(beanstalkd: Beanstalkd) -> None:
    """Issue 18 item 16: localhost, 127.0.0.1, 127.1 and a port with a leading zero name
    one server; listing it twice so is a usage error (it would count twice)."""
    port = beanstalkd.port
    for spelled in (f"localhost:{port}", f"127.1:0{port}"):
        done = run("stats", "-s", f"{beanstalkd.address},{spelled}", limit=15)
        assert done.code == 2
        assert f"{beanstalkd.address} and {spelled} are one server" in done.one_error_line()
    done = run("stats", "-s", f"127.1:0{port}", "--json")  # one spelling alone is fine
    assert done.code == 0 and json.loads(done.out)["server"]["pid"]


@given(st.text(max_size=60) | st.from_regex(r"\A\[?[0-9a-fx.:]{0,30}\]?:[0-9]{0,8}\Z"))
def test_any_address_text_is_canonical_or_a_config_error(text: str) -> None:
    """Issue 18 items 14 and 16: whatever is typed as an address, parsing gives a canonical
    address (which parses to itself) or a ConfigError, never another exception."""
    try:
        canonical = canonical_server(text)
    except ConfigError:
        return
    assert canonical_server(canonical) == canonical
    host, port = parse_server(canonical)
    assert 0 < port < 65536 and (":" not in host or canonical.startswith("["))


@given(st.from_regex(r"\A[+-]?[0-9]{0,6000}\Z") | st.text(max_size=20))
def test_any_integer_text_is_in_range_or_a_config_error(text: str) -> None:
    """Issue 18 item 14: parse_int takes any text (thousands of digits included) and gives
    an int within the bounds or a ConfigError."""
    try:
        number = parse_int(text, "count", low=1, high=2**32 - 1)
    except ConfigError as exc:
        assert len(str(exc)) < 200
        return
    assert 1 <= number <= 2**32 - 1
