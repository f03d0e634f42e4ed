"""Producer.put and schedule_at against a real beanstalkd."""

from __future__ import annotations

import json
import math
import signal
import time
from datetime import UTC, datetime, timedelta, timezone

import beanfleet
import greenstalk
import pytest
from beanfleet.errors import (
    BodyError,
    ConfigError,
    ConnectError,
    JobTooBig,
    ServerDraining,
)
from beanfleet.produce.producer import Producer, delay_until, put, put_many, schedule_at
from beanstalkd_server import Beanstalkd, free_port


def test_put_stores_compact_utf8_json_in_the_tube(
    server_address: str, inspector: greenstalk.Client[bytes]
) -> None:
    with Producer(server_address) as producer:
        job_id = producer.put("emails", {"to": "zoë@example.com", "n": [1, 2]})
    job = inspector.peek(job_id)
    assert job.body == '{"to":"zoë@example.com","n":[1,2]}'.encode()
    stats = inspector.stats_job(job_id)
    assert stats["tube"] == "emails"
    assert stats["state"] == "ready"
    assert stats["pri"] == 1024
    assert stats["ttr"] == 60


@pytest.mark.parametrize(
    ("priority", "stored"),
    [
        ("critical", 0),
        ("high", 256),
        ("normal", 1024),
        ("LOW", 2048),
        (7, 7),
        ("42", 42),
    ],
)
def test_named_and_numeric_priorities(
    server_address: str,
    inspector: greenstalk.Client[bytes],
    priority: int | str,
    stored: int,
) -> None:
    job_id = put("t", {}, server=server_address, priority=priority)
    assert inspector.stats_job(job_id)["pri"] == stored


def test_priority_bounds(server_address: str, inspector: greenstalk.Client[bytes]) -> None:
    with Producer(server_address) as producer:
        top = producer.put("t", 1, priority=2**32 - 1)
        assert inspector.stats_job(top)["pri"] == 2**32 - 1
        for bad in (2**32, -1, "urgent", "", True, "1.5"):
            with pytest.raises(ConfigError, match="invalid priority"):
                producer.put("t", 1, priority=bad)
    assert inspector.stats_tube("t")["total-jobs"] == 1


def test_delay_and_ttr(server_address: str, inspector: greenstalk.Client[bytes]) -> None:
    with Producer(server_address) as producer:
        job_id = producer.put("t", "later", delay=30, ttr=timedelta(minutes=2))
        rounded = producer.put("t", "soon", delay=0.2, ttr=0.2)
        with pytest.raises(ConfigError, match="invalid delay"):
            producer.put("t", 1, delay=-1)
        with pytest.raises(ConfigError, match="invalid ttr"):
            producer.put("t", 1, ttr=float("nan"))
        # The CLI's rule (`--ttr 0` is refused), not beanstalkd's silent 0 -> 1.
        for call in (producer.put, producer.put_many):
            with pytest.raises(ConfigError, match=r"invalid ttr 0: must be 1\.\."):
                call("t", [1] if call is producer.put_many else 1, ttr=0)  # type: ignore[operator]
    stats = inspector.stats_job(job_id)
    assert stats["state"] == "delayed"
    assert stats["delay"] == 30
    assert stats["ttr"] == 120
    # Fractions round up (never earlier than asked).
    assert inspector.stats_job(rounded)["delay"] == 1
    assert inspector.stats_job(rounded)["ttr"] == 1


def test_schedule_at_aware_datetime_and_epoch(
    server_address: str, inspector: greenstalk.Client[bytes]
) -> None:
    with Producer(server_address) as producer:
        in_a_minute = producer.schedule_at(
            "t",
            {"a": 1},
            datetime.now(timezone(timedelta(hours=5))) + timedelta(seconds=60),
        )
        by_epoch = producer.schedule_at("t", {"b": 1}, time.time() + 120)
        past = producer.schedule_at("t", {"c": 1}, datetime(2001, 1, 1, tzinfo=UTC))
    assert 59 <= inspector.stats_job(in_a_minute)["delay"] <= 60
    assert 119 <= inspector.stats_job(by_epoch)["delay"] <= 120
    assert inspector.stats_job(past)["state"] == "ready"
    assert inspector.stats_job(past)["delay"] == 0


def test_schedule_at_refuses_naive_datetimes_and_far_futures(
    server_address: str,
) -> None:
    with Producer(server_address) as producer:
        with pytest.raises(ConfigError, match="naive datetime"):
            producer.schedule_at("t", 1, datetime.now() + timedelta(hours=1))
        with pytest.raises(ConfigError, match="more than"):
            producer.schedule_at("t", 1, time.time() + 2**33)
        with pytest.raises(ConfigError, match="invalid schedule time"):
            producer.schedule_at("t", 1, "tomorrow")  # type: ignore[arg-type]


def test_delay_until_is_whole_seconds_rounded_up() -> None:
    assert delay_until(1000.2, now=1000.0) == 1
    assert delay_until(1000.0, now=1000.0) == 0
    assert delay_until(10.0, now=1000.0) == 0
    assert delay_until(datetime.fromtimestamp(1100, UTC), now=1000.0) == 100


@pytest.mark.parametrize(
    "data", [{1, 2}, float("nan"), b"bytes", object(), {"s": "\ud800"}], ids=repr
)
def test_data_that_is_not_json_raises_body_error(
    server_address: str, inspector: greenstalk.Client[bytes], data: object
) -> None:
    with (
        Producer(server_address) as producer,
        pytest.raises(BodyError, match="not JSON"),
    ):
        producer.put("t", data)
    assert "t" not in inspector.tubes()


def test_circular_data_raises_body_error(server_address: str) -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(BodyError):
        put("t", loop, server=server_address)


@pytest.mark.parametrize("tube", ["", "-leading-hyphen", "has space", "x" * 201, "ümlaut"])
def test_invalid_tube_names_raise_config_error(server_address: str, tube: str) -> None:
    with (
        Producer(server_address) as producer,
        pytest.raises(ConfigError, match="invalid tube"),
    ):
        producer.put(tube, 1)


def test_body_over_max_job_size_raises_job_too_big_with_both_sizes(
    small_server: Beanstalkd,
) -> None:
    fits = "x" * 98  # 100 bytes once quoted
    with Producer(small_server.address) as producer:
        assert producer.max_job_size == 100
        producer.put("t", fits)
        with pytest.raises(JobTooBig) as caught:
            producer.put("t", fits + "y")
    assert caught.value.size == 101
    assert caught.value.limit == 100
    assert str(caught.value) == "job body is 101 bytes, server max-job-size is 100 bytes"


def test_max_job_size_is_read_once_per_connection(
    server_address: str, inspector: greenstalk.Client[bytes]
) -> None:
    before = inspector.stats()["cmd-stats"]
    with Producer(server_address) as producer:
        for i in range(5):
            producer.put("t", i)
    # One stats for the producer, one for this second look.
    assert inspector.stats()["cmd-stats"] == before + 2


def test_draining_server_raises_server_draining(
    beanstalkd: Beanstalkd, inspector: greenstalk.Client[bytes]
) -> None:
    with Producer(beanstalkd.address) as producer:
        producer.put("t", 1)
        assert beanstalkd.proc is not None
        beanstalkd.proc.send_signal(signal.SIGUSR1)  # beanstalkd's drain mode
        deadline = time.monotonic() + 5
        while inspector.stats()["draining"] != "true" and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ServerDraining, match="draining"):
            producer.put("t", 2)
    assert inspector.stats_tube("t")["total-jobs"] == 1


def test_refused_connection_is_a_one_line_connect_error() -> None:
    port = free_port()
    with pytest.raises(ConnectError) as caught:
        Producer(f"127.0.0.1:{port}")
    assert (
        str(caught.value) == f"cannot connect to beanstalkd at 127.0.0.1:{port}: connection refused"
    )


def test_producer_reconnects_after_the_server_comes_back(
    beanstalkd: Beanstalkd,
) -> None:
    with Producer(beanstalkd.address) as producer:
        first = producer.put("t", 1)
        beanstalkd.kill()
        with pytest.raises(ConnectError, match=f"beanstalkd at {beanstalkd.address}"):
            producer.put("t", 2)
        beanstalkd.start()
        second = producer.put("t", 3)
    # The binlog kept job 1, so the restarted server numbers on from there.
    assert second > first


def test_module_helpers_and_package_exports(
    server_address: str, inspector: greenstalk.Client[bytes]
) -> None:
    assert beanfleet.put is put
    assert beanfleet.put_many is put_many
    assert beanfleet.schedule_at is schedule_at
    assert beanfleet.Producer is Producer
    assert beanfleet.PRIORITIES["critical"] == 0
    one = beanfleet.put("helpers", [1], server=server_address, priority="high")
    many = beanfleet.put_many("helpers", [{"i": 1}, {"i": 2}], server=server_address)
    later = beanfleet.schedule_at("helpers", None, time.time() + 10, server=server_address)
    assert [json.loads(inspector.peek(i).body) for i in (one, *many, later)] == [
        [1],
        {"i": 1},
        {"i": 2},
        None,
    ]
    assert inspector.stats_job(one)["pri"] == 256
    assert math.isclose(inspector.stats_job(later)["delay"], 10, abs_tol=1)


def test_server_defaults_to_the_environment(
    server_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEANFLEET_SERVER", server_address)
    with Producer() as producer:
        assert producer.server == server_address
        assert producer.put("env", 1) > 0
