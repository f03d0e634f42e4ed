"""Issue 18, the producer's edges with one server: a frozen server, a server killed in the
middle of a bulk put, and bad input on the command line and in the API."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Callable
from typing import Any

import greenstalk
import pytest
from beanfleet.errors import ConfigError, ConnectError, PartialPut
from beanfleet.produce.producer import Producer
from beanstalkd_server import Beanstalkd
from put_edges import SignalAfterPuts, line_numbers, ns_in_tube, one_line_error, run_cli

# -- helpers ---------------------------------------------------------------------------------


def _finishes(call: Callable[[], Any], bound: float = 15.0) -> BaseException | None:
    """Run ``call`` in a thread; fail if it has not finished within ``bound`` seconds;
    return what it raised (None if it returned)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    assert outcome, f"still waiting after {bound}s on a frozen server"
    return outcome[0]


def _bodies_in(server: Beanstalkd, tube: str, ids: list[int]) -> dict[int, Any]:
    found: dict[int, Any] = {}
    with greenstalk.Client(server.pair, encoding=None) as client:
        for job_id in ids:
            found[job_id] = json.loads(client.peek(job_id).body)
        return found


# -- item 8: a frozen server -----------------------------------------------------------------


@pytest.mark.parametrize("call", ["put", "put in another tube", "put_many"])
@pytest.mark.parametrize("warm", [False, True], ids=["frozen-before-connect", "frozen-when-warm"])
def test_producer_waits_on_a_frozen_server_at_most_its_timeout(
    beanstalkd: Beanstalkd, call: str, warm: bool
) -> None:
    """Issue 18 item 8: a one-server Producer(timeout=1) on a frozen (SIGSTOP) server gives up
    within a bound (connect, use, put, put_many) with an error naming the server, instead of
    waiting until the server resumes."""
    assert beanstalkd.proc is not None
    producers: list[Producer] = []
    if warm:
        producers.append(Producer(beanstalkd.address, timeout=1))
        producers[0].put("t", "warm")
    beanstalkd.proc.send_signal(signal.SIGSTOP)

    def attempt() -> None:
        if not producers:  # the constructor's handshake meets the frozen server
            producers.append(Producer(beanstalkd.address, timeout=1))
        producer = producers[0]
        if call == "put":
            producer.put("t", 1)
        elif call == "put in another tube":
            producer.put("other", 1)
        else:
            producer.put_many("t", list(range(3000)), batch_size=100)

    try:
        raised = _finishes(attempt)
    finally:
        beanstalkd.proc.send_signal(signal.SIGCONT)
    # A bulk put whose replies were lost says which items may be in (PartialPut).
    cause = raised.reason if isinstance(raised, PartialPut) else raised
    assert isinstance(cause, ConnectError), raised
    assert beanstalkd.address in str(raised)
    # The producer is usable again once the server is back.
    with producers[0] if producers else Producer(beanstalkd.address, timeout=1) as producer:
        assert producer.put("t", "after") > 0


def test_put_command_on_a_frozen_server_exits_1_naming_it(beanstalkd: Beanstalkd) -> None:
    """Issue 18 item 8: `beanfleet put` on a frozen server exits 1 within its timeout with one
    line naming the server, instead of hanging until the server resumes."""
    assert beanstalkd.proc is not None
    beanstalkd.proc.send_signal(signal.SIGSTOP)
    try:
        result = run_cli("put", "-s", beanstalkd.address, "-t", "t", "1", timeout=20)
    finally:
        beanstalkd.proc.send_signal(signal.SIGCONT)
    assert result.returncode == 1
    assert beanstalkd.address in one_line_error(result.stderr)


# -- item 2: a bulk put cut off by a server crash --------------------------------------------


def test_bulk_put_cut_off_by_kill9_says_exactly_which_items_went_in(
    beanstalkd: Beanstalkd,
) -> None:
    """Issue 18 item 2: a bulk put whose server is killed (-9) mid-batch raises PartialPut
    holding the id of every enqueued item by input index, the items whose reply was lost
    (maybe inserted) and those certainly not enqueued; the restarted server holds exactly the
    enqueued ones plus at most the maybe-inserted ones."""
    items = [{"n": n} for n in range(50_000)]
    killer = SignalAfterPuts(beanstalkd, 2000, signal.SIGKILL)
    with Producer(beanstalkd.address, timeout=5) as producer:
        producer.put("warm", 0)
        killer.start()
        with pytest.raises(PartialPut) as caught:
            producer.put_many("bulk", items, batch_size=100)
    killer.join(5)
    error = caught.value
    placed, maybe, missing = error.placed, error.maybe_inserted, error.not_placed
    assert placed and missing
    assert sorted(placed + maybe + missing) == list(range(len(items)))
    assert len(error.ids) == len(items)
    assert all((error.ids[i] is None) == (i not in set(placed)) for i in range(len(items)))
    assert f"{len(placed)} of {len(items)} jobs were enqueued" in str(error)
    assert beanstalkd.address in str(error)
    assert isinstance(error.reason, ConnectError)
    beanstalkd.proc = None
    beanstalkd.start()  # same port, same binlog
    bodies = _bodies_in(beanstalkd, "bulk", [error.ids[i] for i in placed])  # type: ignore[misc]
    assert all(bodies[error.ids[i]] == items[i] for i in placed)  # type: ignore[index]
    found = set(ns_in_tube(beanstalkd, "bulk"))
    assert set(placed) <= found <= set(placed) | set(maybe)


def test_bulk_put_on_a_server_frozen_mid_batch_is_bounded_and_partial(
    beanstalkd: Beanstalkd,
) -> None:
    """Issue 18 items 2 and 8: a server frozen (SIGSTOP) mid-batch costs the bulk put its
    timeout, not the whole freeze; what went in, what may have and what did not is told."""
    items = [{"n": n} for n in range(50_000)]
    freezer = SignalAfterPuts(beanstalkd, 2000, signal.SIGSTOP)
    assert beanstalkd.proc is not None
    try:
        with Producer(beanstalkd.address, timeout=1) as producer:
            producer.put("warm", 0)
            freezer.start()
            raised = _finishes(lambda: producer.put_many("bulk", items, batch_size=100))
        assert isinstance(raised, PartialPut), raised
        assert freezer.sent.is_set()
    finally:
        beanstalkd.proc.send_signal(signal.SIGCONT)
    assert raised.maybe_inserted and raised.not_placed
    assert "maybe inserted" in str(raised)
    found = set(ns_in_tube(beanstalkd, "bulk"))
    assert set(raised.placed) <= found <= set(raised.placed) | set(raised.maybe_inserted)


def test_put_stdin_cut_off_by_kill9_names_the_lines_that_went_in(beanstalkd: Beanstalkd) -> None:
    """Issue 18 item 2: `beanfleet put -` cut off by a server crash exits 1 with one line
    giving the stdin line numbers enqueued, maybe inserted and not enqueued."""
    lines = [json.dumps({"n": n}) for n in range(1, 60_001)]
    lines.insert(10, "")  # a blank line: line numbers are not item indexes
    killer = SignalAfterPuts(beanstalkd, 5000, signal.SIGKILL)
    killer.start()
    result = run_cli("put", "-s", beanstalkd.address, "-t", "bulk", "-", stdin="\n".join(lines))
    killer.join(5)
    assert killer.sent.is_set()
    assert result.returncode == 1
    assert result.stdout == ""
    error = one_line_error(result.stderr)
    done = re.search(r"(\d+) of 60000 jobs were enqueued \(stdin lines ([-0-9, ]+)\)", error)
    maybe = re.search(r"(\d+) maybe inserted \(stdin lines ([-0-9, ]+);", error)
    not_done = re.search(r"(\d+) not enqueued \(stdin lines ([-0-9, ]+)\)", error)
    assert done and maybe and not_done, error
    placed_lines = line_numbers(done.group(2))
    maybe_lines = line_numbers(maybe.group(2))
    # line L (after the blank line 11) holds n = L - 1
    as_n = {line: (line if line <= 10 else line - 1) for line in range(1, 60_002) if line != 11}
    placed = {as_n[line] for line in placed_lines if line != 11}
    assert len(placed) == int(done.group(1))
    beanstalkd.proc = None
    beanstalkd.start()
    found = set(ns_in_tube(beanstalkd, "bulk"))
    assert placed <= found <= placed | {as_n[line] for line in maybe_lines if line != 11}


# -- item 14: bad input on the command line --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "9" * 5000, "1"], "invalid priority"),
        (["-p", "0" * 5000 + "7", "1"], None),  # leading zeros: still priority 7
        (["--delay", "9" * 5000, "1"], "--delay"),
        (["--ttr", "9" * 5000, "1"], "--ttr"),
        (["[" * 50_000 + "]" * 50_000], "invalid JSON"),
        (["NaN"], "invalid JSON"),
        (["Infinity"], "invalid JSON"),
        (['{"a": -Infinity}'], "invalid JSON"),
        (["1e999"], "JSON"),
        (["9" * 5000], "JSON"),
    ],
    ids=[
        "huge-priority",
        "zero-padded-priority",
        "huge-delay",
        "huge-ttr",
        "deep-json",
        "nan",
        "infinity",
        "minus-infinity",
        "float-overflow",
        "huge-int",
    ],
)
def test_put_bad_arguments_are_one_line_usage_errors(
    beanstalkd: Beanstalkd, args: list[str], message: str | None
) -> None:
    """Issue 18 item 14: a priority/delay/ttr of thousands of digits, a JSON body nested too
    deep, NaN/Infinity or a number out of range give one line on stderr and exit 2 (usage),
    never a traceback, and enqueue nothing."""
    result = run_cli("put", "-s", beanstalkd.address, "-t", "t", *args)
    with greenstalk.Client(beanstalkd.pair, encoding=None) as client:
        puts = int(client.stats()["cmd-put"])
    if message is None:
        assert (result.returncode, result.stderr) == (0, "")
        assert puts == 1
        return
    assert result.returncode == 2, result.stderr
    error = one_line_error(result.stderr)
    assert message in error
    assert len(error) < 400  # a 5000-digit value is not echoed whole
    assert puts == 0


@pytest.mark.parametrize(
    "bad",
    ["NaN", '{"x": Infinity}', "[" * 50_000 + "]" * 50_000, "9" * 5000, "1e999"],
    ids=["nan", "infinity", "deep-json", "huge-int", "float-overflow"],
)
def test_put_stdin_bad_line_is_named_by_its_line_number(beanstalkd: Beanstalkd, bad: str) -> None:
    """Issue 18 item 14: NaN/Infinity, JSON nested too deep or a number out of range on stdin
    is one line naming its stdin line number (not an item index), exits as invalid JSON on
    stdin does, and enqueues nothing."""
    invalid = run_cli("put", "-s", beanstalkd.address, "-t", "t", "-", stdin="1\n\n{oops\n")
    result = run_cli("put", "-s", beanstalkd.address, "-t", "t", "-", stdin=f"1\n\n{bad}\n2\n")
    assert result.returncode == invalid.returncode != 0
    assert result.stdout == ""
    assert one_line_error(result.stderr).startswith("beanfleet: error: stdin line 3: ")
    with greenstalk.Client(beanstalkd.pair, encoding=None) as client:
        assert int(client.stats()["cmd-put"]) == 0


# -- item 16 (producer): no server, float priorities -----------------------------------------


@pytest.mark.parametrize("servers", [[], ()])
def test_producer_with_an_empty_server_list_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, servers: Any
) -> None:
    """Issue 18 item 16: Producer(servers=[]) raises ConfigError instead of silently putting
    on the default server."""
    monkeypatch.delenv("BEANFLEET_SERVER", raising=False)
    with pytest.raises(ConfigError, match="no server"):
        Producer(servers=servers)


@pytest.mark.parametrize(
    "priority",
    [1.5, 1.0, float("nan"), True, 10**5000, "9" * 5000],
    ids=["float", "whole-float", "nan", "bool", "huge-int", "huge-string"],
)
def test_a_priority_that_is_not_an_integer_in_range_is_refused(
    beanstalkd: Beanstalkd, priority: Any
) -> None:
    """Issue 18 item 16: a float priority is refused (not truncated), as are bools and numbers
    of thousands of digits, with a short ConfigError; nothing is enqueued."""
    with Producer(beanstalkd.address) as producer:
        for call in (
            lambda: producer.put("t", 1, priority=priority),
            lambda: producer.put_many("t", [1, 2], priority=priority),
        ):
            with pytest.raises(ConfigError, match="invalid priority") as caught:
                call()
            assert len(str(caught.value)) < 200
    with greenstalk.Client(beanstalkd.pair, encoding=None) as client:
        assert int(client.stats()["cmd-put"]) == 0


@pytest.mark.parametrize("argument", ["delay", "ttr"])
@pytest.mark.parametrize("value", [10**5000, -(10**400), "5"], ids=["huge", "huge-negative", "str"])
def test_delay_and_ttr_of_thousands_of_digits_are_config_errors(
    beanstalkd: Beanstalkd, argument: str, value: Any
) -> None:
    """Issue 18 item 14: a delay or ttr integer of hundreds of digits (or not a number) is a
    short ConfigError from the producer API, not an OverflowError; nothing is enqueued."""
    with Producer(beanstalkd.address) as producer:
        with pytest.raises(ConfigError, match=f"invalid {argument}") as caught:
            producer.put("t", 1, **{argument: value})
        assert len(str(caught.value)) < 200
    with greenstalk.Client(beanstalkd.pair, encoding=None) as client:
        assert int(client.stats()["cmd-put"]) == 0
