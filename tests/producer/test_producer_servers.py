"""The producer over a set of real beanstalkd servers: placement, failover, recovery, ids.

Each behaviour defined for one server runs with one server and with two (the ``servers``
fixture): one server is a set of one, not another code path.  Failover, at-least-once and
the frozen-server probe need a second server to go to, so those tests run with two only.
(Moved from tests/multi/test_multi_producer.py, issue 19.)
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import greenstalk
import pytest
from beanfleet import ConfigError, ConnectError, Producer
from beanfleet.errors import AllServersDown, MaybeInserted
from beanfleet.wire.jobref import JobRef, locate_job, public_id
from beanfleet.wire.servers import rendezvous_order
from beanstalkd_server import Beanstalkd
from servers_support import addresses, peek_body, server_of, tube_count
from waiting import wait_for

Pair = tuple[Beanstalkd, Beanstalkd]


def test_spread_puts_over_the_servers_with_ids_as_users_see_them(
    servers: list[Beanstalkd],
) -> None:
    """Round-robin over the servers; ids print bare with one server (the contract), as
    SERVER/ID with several."""
    with Producer(servers=addresses(servers)) as producer:
        ids = [producer.put("t", {"n": n}) for n in range(20)]
    assert [tube_count(server, "t") for server in servers] == [20 // len(servers)] * len(servers)
    assert len(set(ids)) == 20
    first = ids[0]
    if len(servers) == 1:
        assert all(type(job) is int for job in ids)
        assert str(first) == str(int(first)) and first == int(first)
    else:
        assert all(isinstance(job, JobRef) for job in ids)
        assert {job.server for job in ids} == set(addresses(servers))  # type: ignore[union-attr]
        assert str(first) == f"{first.server}/{int(first)}"  # type: ignore[union-attr]
    for n in (0, 19):
        assert peek_body(server_of(ids[n], servers), int(ids[n])) == b'{"n":%d}' % n


def test_env_list_and_comma_server_name_the_set(
    servers: list[Beanstalkd], server_list: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEANFLEET_SERVER", server_list)
    with Producer() as producer:
        assert producer.servers == addresses(servers)
        assert producer.server == server_list
    with Producer(server_list.replace(",", ", ")) as producer:
        assert producer.servers == addresses(servers)
    with pytest.raises(ConfigError, match="given twice"):
        Producer(servers=[servers[0].address, servers[0].address])


def test_tube_placement_keeps_each_tube_on_its_rendezvous_server(
    servers: list[Beanstalkd],
) -> None:
    listed = addresses(servers)
    with Producer(servers=listed, placement="tube") as producer:
        for tube in ("alpha", "beta", "gamma", "delta"):
            ids = [producer.put(tube, n) for n in range(5)]
            home = rendezvous_order(tube, listed)[0]
            assert {server_of(job, servers).address for job in ids} == {home}
            assert tube_count(server_of(ids[0], servers), tube) == 5
    # the same list in another order picks the same homes
    assert rendezvous_order("alpha", listed)[0] == rendezvous_order("alpha", listed[::-1])[0]


def test_kill9_fails_over_then_recovers(beanstalkd: Beanstalkd, second: Beanstalkd) -> None:
    """Two servers: failover needs another server to go to."""
    a, b = beanstalkd, second
    with Producer(servers=[a.address, b.address]) as producer:
        for n in range(4):
            producer.put("t", n)  # both links open and idle
        a.kill()
        ids = [producer.put("t", n) for n in range(20)]  # none fails
        assert {job.server for job in ids} == {b.address}  # type: ignore[union-attr]
        a.start()  # same port, same binlog: its two jobs are back
        assert tube_count(a, "t") == 2

        def a_gets_jobs_again() -> bool:
            return producer.put("t", "x").server == a.address  # type: ignore[union-attr]

        wait_for(a_gets_jobs_again, 30, "puts to reach the restarted server again")


def test_draining_server_is_skipped_single_and_bulk(
    beanstalkd: Beanstalkd, second: Beanstalkd
) -> None:
    """Two servers: a drained server's jobs need another server to go to (one draining
    server is test_producer_put's ServerDraining)."""
    a, b = beanstalkd, second
    with Producer(servers=[a.address, b.address]) as producer:
        producer.put("t", 0)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGUSR1)  # beanstalkd enters drain mode
        wait_for(lambda: _draining(a), 10, "server a to drain")
        ids = [producer.put("t", n) for n in range(10)]
        assert {job.server for job in ids} == {b.address}  # type: ignore[union-attr]
        bulk = producer.put_many("bulk", list(range(500)), batch_size=100)
        assert len(bulk) == 500
        assert {job.server for job in bulk} == {b.address}  # type: ignore[union-attr]
        assert tube_count(b, "bulk") == 500


def _draining(server: Beanstalkd) -> bool:
    with greenstalk.Client(server.pair) as client:
        return client.stats()["draining"] is True or str(client.stats()["draining"]) == "true"


def test_put_many_splits_over_the_servers_in_order(servers: list[Beanstalkd]) -> None:
    with Producer(servers=addresses(servers)) as producer:
        ids = producer.put_many("bulk", [{"n": n} for n in range(1001)], batch_size=64)
    assert len(ids) == 1001
    counts = [tube_count(server, "bulk") for server in servers]
    assert sum(counts) == 1001
    assert all(count > 1000 // len(servers) - 100 for count in counts)  # an even split
    for n in (0, 500, 1000):
        job = ids[n]
        assert peek_body(server_of(job, servers), int(job)) == b'{"n":%d}' % n


def test_every_server_down_is_one_error_naming_each(servers: list[Beanstalkd]) -> None:
    """With one server its own ConnectError, as always; with several AllServersDown (a
    ConnectError) naming each."""
    with Producer(servers=addresses(servers)) as producer:
        for server in servers:
            server.kill()
        with pytest.raises(ConnectError) as caught:
            producer.put("t", 1)
        assert all(server.address in str(caught.value) for server in servers)
        with pytest.raises(ConnectError, match="0 of 3 jobs were enqueued") as bulk:
            producer.put_many("t", [1, 2, 3])
    several = len(servers) > 1
    assert isinstance(caught.value, AllServersDown) == several
    assert isinstance(bulk.value, AllServersDown) == several
    if not several:
        assert str(caught.value) == (
            f"cannot connect to beanstalkd at {servers[0].address}: connection refused"
        )


def _home_first(servers: list[Beanstalkd]) -> str:
    """A tube whose rendezvous home is the first server (deterministic, found by trying)."""
    listed = addresses(servers)
    return next(f"t{n}" for n in range(100) if rendezvous_order(f"t{n}", listed)[0] == listed[0])


def test_lost_reply_is_maybe_inserted_and_not_repeated(servers: list[Beanstalkd]) -> None:
    tube = _home_first(servers)
    a, *others = servers
    with Producer(servers=addresses(servers), placement="tube", timeout=1.0) as producer:
        producer.put(tube, "warm")  # link to a open
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)  # the put is sent, its reply never comes
        try:
            with pytest.raises(MaybeInserted, match="may have been inserted") as caught:
                producer.put(tube, "maybe")
            assert caught.value.server == a.address
        finally:
            a.proc.send_signal(signal.SIGCONT)
    assert [tube_count(other, tube) for other in others] == [0] * len(others)  # not put again
    wait_for(lambda: tube_count(a, tube) == 2, 10, "the maybe-inserted job to show on a")


def test_at_least_once_puts_a_lost_reply_again_elsewhere(
    beanstalkd: Beanstalkd, second: Beanstalkd
) -> None:
    """Two servers: "again elsewhere" needs another server."""
    servers = [beanstalkd, second]
    tube = _home_first(servers)
    a, b = servers
    with Producer(
        servers=addresses(servers), placement="tube", timeout=1.0, at_least_once=True
    ) as producer:
        producer.put(tube, "warm")
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        try:
            job = producer.put(tube, "again")
        finally:
            a.proc.send_signal(signal.SIGCONT)
    assert job.server == b.address  # type: ignore[union-attr]
    assert tube_count(b, tube) == 1


def test_a_frozen_server_is_probed_with_a_short_handshake_not_the_put_timeout(
    beanstalkd: Beanstalkd, second: Beanstalkd
) -> None:
    """Two servers: the puts must land on the other server while one is frozen.

    A frozen server (SIGSTOP, a stopped container) accepts the TCP connect from its listen
    backlog and never answers. With a 60 s put timeout, the puts must still land on b well
    before one probe of a could use that timeout up: the handshake has its own short bound."""
    a, b = beanstalkd, second
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


def test_use_is_restored_after_a_reconnect(servers: list[Beanstalkd]) -> None:
    tube = _home_first(servers)
    a = servers[0]

    def reached_a() -> Any:
        try:
            job = producer.put(tube, 2)
        except ConnectError:  # one server: its own error until it is back
            return None
        return server_of(job, servers) is a and job

    with Producer(servers=addresses(servers), placement="tube") as producer:
        producer.put(tube, 1)
        a.kill()
        a.start()
        job = wait_for(reached_a, 30, "a put to reach the restarted server")
    assert tube_count(a, tube) >= 2  # in the tube, not in "default"
    assert tube_count(a, "default") == 0
    assert peek_body(a, int(job)) == b"2"


def test_job_ids_that_collide_are_told_apart(beanstalkd: Beanstalkd, second: Beanstalkd) -> None:
    """Two servers: the same number on each is two jobs."""
    a, b = beanstalkd, second
    first_a = JobRef(a.address, 1)
    first_b = JobRef(b.address, 1)
    assert first_a != first_b and first_a == JobRef(a.address, 1)
    assert len({first_a, first_b}) == 2
    assert locate_job(f"{b.address}/1", [a.address, b.address]) == (b.address, 1)
    with pytest.raises(ConfigError, match="ambiguous"):
        locate_job("1", [a.address, b.address])
    with pytest.raises(ConfigError, match="not one of"):
        locate_job("127.0.0.1:1/1", [a.address, b.address])


def test_a_job_reference_is_a_value_with_transitive_equality() -> None:
    """Issue 19: JobRef equals only a JobRef with the same server and id (never a bare int,
    so a == 1 == b cannot hold with a != b), hashes as its value, and still works as an id
    number (%d, int(), indexing)."""
    a1, b1 = JobRef("a:1", 1), JobRef("b:1", 1)
    assert a1 != 1 and b1 != 1 and 1 != a1  # noqa: SIM300 - both orders on purpose
    assert a1 == JobRef("a:1", 1) and hash(a1) == hash(JobRef("a:1", 1))
    assert {a1, b1, JobRef("a:1", 1)} == {a1, b1}
    # %d is how the worker writes ids into commands
    assert (int(a1), b"delete %d" % a1, "%d" % b1) == (1, b"delete 1", "1")  # noqa: UP031
    assert (str(a1), f"{a1}", f"{a1:d}", f"{a1:>8}") == ("a:1/1", "a:1/1", "1", "   a:1/1")
    with pytest.raises(AttributeError):
        a1.id = 2  # type: ignore[misc]  # frozen


def test_public_id_is_bare_with_one_server_and_a_reference_with_several() -> None:
    """The one place the server count shapes an id (the contract: ids print bare with one
    server, and a one-server user's ``job_id == 42`` keeps working)."""
    one = public_id(["a:1"], "a:1", 42)
    assert type(one) is int and one == 42 and str(one) == "42"
    several = public_id(["a:1", "b:1"], "b:1", 42)
    assert several == JobRef("b:1", 42) and str(several) == "b:1/42"
