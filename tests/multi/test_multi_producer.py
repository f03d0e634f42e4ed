"""The producer over two real beanstalkd servers: placement, failover, recovery, ids."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from beanfleet import ConfigError, Producer
from beanfleet.errors import AllServersDown, MaybeInserted
from beanfleet.wire.jobref import JobRef, locate_job
from beanfleet.wire.servers import rendezvous_order
from beanstalkd_server import Beanstalkd
from multi_support import peek_body, tube_count, wait_for

Pair = tuple[Beanstalkd, Beanstalkd]


def test_spread_puts_over_both_servers_with_server_ids(pair: Pair) -> None:
    a, b = pair
    with Producer(servers=[a.address, b.address]) as producer:
        ids = [producer.put("t", {"n": n}) for n in range(20)]
    assert all(isinstance(job, JobRef) for job in ids)
    assert {job.server for job in ids} == {a.address, b.address}
    assert tube_count(a, "t") == tube_count(b, "t") == 10  # round-robin
    first = ids[0]
    assert str(first) == f"{first.server}/{int(first)}"
    assert len(set(ids)) == 20


def test_env_list_and_comma_server_mean_several(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    monkeypatch.setenv("BEANFLEET_SERVER", f"{a.address},{b.address}")
    with Producer() as producer:
        assert producer.servers == [a.address, b.address]
    with Producer(f"{a.address}, {b.address}") as producer:
        assert producer.servers == [a.address, b.address]
    with pytest.raises(ConfigError, match="given twice"):
        Producer(servers=[a.address, a.address])


def test_tube_placement_keeps_each_tube_on_its_rendezvous_server(pair: Pair) -> None:
    a, b = pair
    servers = [a.address, b.address]
    by_address = {a.address: a, b.address: b}
    with Producer(servers=servers, placement="tube") as producer:
        for tube in ("alpha", "beta", "gamma", "delta"):
            ids = [producer.put(tube, n) for n in range(5)]
            home = rendezvous_order(tube, servers)[0]
            assert {job.server for job in ids} == {home}  # type: ignore[attr-defined]
            assert tube_count(by_address[home], tube) == 5
    # the same list in another order picks the same homes
    assert rendezvous_order("alpha", servers)[0] == rendezvous_order("alpha", servers[::-1])[0]


def test_kill9_fails_over_then_recovers(pair: Pair) -> None:
    a, b = pair
    with Producer(servers=[a.address, b.address]) as producer:
        for n in range(4):
            producer.put("t", n)  # both links open and idle
        a.kill()
        ids = [producer.put("t", n) for n in range(20)]  # none fails
        assert {job.server for job in ids} == {b.address}  # type: ignore[attr-defined]
        a.start()  # same port, same binlog: its two jobs are back
        assert tube_count(a, "t") == 2

        def a_gets_jobs_again() -> bool:
            return producer.put("t", "x").server == a.address  # type: ignore[attr-defined,no-any-return]

        wait_for(a_gets_jobs_again, 30, "puts to reach the restarted server again")


def test_draining_server_is_skipped_single_and_bulk(pair: Pair) -> None:
    a, b = pair
    with Producer(servers=[a.address, b.address]) as producer:
        producer.put("t", 0)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGUSR1)  # beanstalkd enters drain mode
        wait_for(lambda: _draining(a), 10, "server a to drain")
        ids = [producer.put("t", n) for n in range(10)]
        assert {job.server for job in ids} == {b.address}  # type: ignore[attr-defined]
        bulk = producer.put_many("bulk", list(range(500)), batch_size=100)
        assert len(bulk) == 500
        assert {job.server for job in bulk} == {b.address}  # type: ignore[attr-defined]
        assert tube_count(b, "bulk") == 500


def _draining(server: Beanstalkd) -> bool:
    import greenstalk

    with greenstalk.Client(server.pair) as client:
        return client.stats()["draining"] is True or str(client.stats()["draining"]) == "true"


def test_put_many_splits_over_servers_in_order(pair: Pair) -> None:
    a, b = pair
    with Producer(servers=[a.address, b.address]) as producer:
        ids = producer.put_many("bulk", [{"n": n} for n in range(1001)], batch_size=64)
    assert len(ids) == 1001
    assert tube_count(a, "bulk") + tube_count(b, "bulk") == 1001
    assert tube_count(a, "bulk") > 400 and tube_count(b, "bulk") > 400
    by_address = {a.address: a, b.address: b}
    for n in (0, 500, 1000):
        job = ids[n]
        assert isinstance(job, JobRef)
        assert peek_body(by_address[job.server], int(job)) == b'{"n":%d}' % n


def test_all_servers_down_is_one_error_naming_each(pair: Pair) -> None:
    a, b = pair
    with Producer(servers=[a.address, b.address]) as producer:
        a.kill()
        b.kill()
        with pytest.raises(AllServersDown) as caught:
            producer.put("t", 1)
        assert a.address in str(caught.value) and b.address in str(caught.value)
        with pytest.raises(AllServersDown, match="0 of 3 jobs were enqueued"):
            producer.put_many("t", [1, 2, 3])


def _home_first(pair: Pair) -> tuple[str, Beanstalkd, Beanstalkd]:
    """A tube whose rendezvous home is server a (deterministic, found by trying)."""
    a, b = pair
    servers = [a.address, b.address]
    tube = next(f"t{n}" for n in range(100) if rendezvous_order(f"t{n}", servers)[0] == a.address)
    return tube, a, b


def test_lost_reply_is_maybe_inserted_and_not_repeated(pair: Pair) -> None:
    tube, a, b = _home_first(pair)
    with Producer(servers=[a.address, b.address], placement="tube", timeout=1.0) as producer:
        producer.put(tube, "warm")  # link to a open
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)  # the put is sent, its reply never comes
        try:
            with pytest.raises(MaybeInserted, match="may have been inserted") as caught:
                producer.put(tube, "maybe")
            assert caught.value.server == a.address
        finally:
            a.proc.send_signal(signal.SIGCONT)
    assert tube_count(b, tube) == 0  # not put again elsewhere
    wait_for(lambda: tube_count(a, tube) == 2, 10, "the maybe-inserted job to show on a")


def test_at_least_once_puts_a_lost_reply_again_elsewhere(pair: Pair) -> None:
    tube, a, b = _home_first(pair)
    servers = [a.address, b.address]
    with Producer(servers=servers, placement="tube", timeout=1.0, at_least_once=True) as producer:
        producer.put(tube, "warm")
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        try:
            job = producer.put(tube, "again")
        finally:
            a.proc.send_signal(signal.SIGCONT)
    assert job.server == b.address  # type: ignore[attr-defined]
    assert tube_count(b, tube) == 1


def test_a_frozen_server_is_probed_with_a_short_handshake_not_the_put_timeout(
    pair: Pair,
) -> None:
    # A frozen server (SIGSTOP, a stopped container) accepts the TCP connect from its listen
    # backlog and never answers. With a 60 s put timeout, the puts must still land on b well
    # before one probe of a could use that timeout up: the handshake has its own short bound.
    a, b = pair
    assert a.proc is not None
    a.proc.send_signal(signal.SIGSTOP)
    ids: list[Any] = []
    errors: list[BaseException] = []

    def put_some() -> None:
        try:
            with Producer(servers=[a.address, b.address], timeout=60.0) as producer:
                ids.extend(producer.put("t", n) for n in range(4))  # round-robin asks a too
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=put_some, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(ids) == 4 or errors, 30, "four puts with a frozen")
    finally:
        a.proc.send_signal(signal.SIGCONT)
        thread.join(timeout=90)
    assert not errors
    assert {job.server for job in ids} == {b.address}
    assert tube_count(b, "t") == 4


def test_use_is_restored_after_a_reconnect(pair: Pair) -> None:
    tube, a, b = _home_first(pair)
    with Producer(servers=[a.address, b.address], placement="tube") as producer:
        producer.put(tube, 1)
        a.kill()
        a.start()
        job = wait_for(
            lambda: (j := producer.put(tube, 2)).server == a.address and j,  # type: ignore[attr-defined]
            30,
            "a put to reach the restarted server",
        )
    assert tube_count(a, tube) >= 2  # in the tube, not in "default"
    assert tube_count(a, "default") == 0
    assert peek_body(a, int(job)) == b"2"


def test_job_ids_that_collide_are_told_apart(pair: Pair) -> None:
    a, b = pair
    first_a = JobRef(a.address, 1)
    first_b = JobRef(b.address, 1)
    assert first_a != first_b and first_a == JobRef(a.address, 1)
    assert len({first_a, first_b}) == 2
    assert locate_job(f"{b.address}/1", [a.address, b.address]) == (b.address, 1)
    with pytest.raises(ConfigError, match="ambiguous"):
        locate_job("1", [a.address, b.address])
    with pytest.raises(ConfigError, match="not one of"):
        locate_job("127.0.0.1:1/1", [a.address, b.address])
