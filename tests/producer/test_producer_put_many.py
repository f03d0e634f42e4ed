"""Producer.put_many: pipelined bulk put, all-or-nothing validation, and its speed."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import greenstalk
import pytest
from beanfleet.errors import BodyError, ConfigError, JobTooBig, ServerDraining
from beanfleet.produce.producer import Producer
from beanstalkd_server import Beanstalkd


def _bodies(inspector: greenstalk.Client[bytes], ids: list[int]) -> list[Any]:
    return [json.loads(inspector.peek(job_id).body) for job_id in ids]


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_put_many_enqueues_every_item_in_order(
    server_address: str, inspector: greenstalk.Client[bytes], batch_size: int
) -> None:
    items = [{"n": i, "text": "é" * (i % 5)} for i in range(2345)]
    with Producer(server_address) as producer:
        ids = producer.put_many(
            "bulk", items, priority="high", delay=0, ttr=30, batch_size=batch_size
        )
    assert len(ids) == len(items)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert inspector.stats_tube("bulk")["current-jobs-ready"] == len(items)
    assert _bodies(inspector, ids[:3] + ids[-3:]) == items[:3] + items[-3:]
    stats = inspector.stats_job(ids[-1])
    assert (stats["pri"], stats["ttr"], stats["tube"]) == (256, 30, "bulk")
    # Reserve order follows put order for equal priorities: the first item comes out first.
    inspector.watch("bulk")
    assert json.loads(inspector.reserve(timeout=1).body) == items[0]


def test_put_many_then_put_switch_tubes_on_one_producer(
    server_address: str, inspector: greenstalk.Client[bytes]
) -> None:
    with Producer(server_address) as producer:
        a = producer.put_many("a", [1, 2])
        b = producer.put_many("b", [3])
        c = producer.put("a", 4)
        d = producer.put_many("a", [5], delay=60)
    assert [inspector.stats_job(i)["tube"] for i in (*a, *b, c, *d)] == [
        "a",
        "a",
        "b",
        "a",
        "a",
    ]
    assert inspector.stats_job(d[0])["state"] == "delayed"


def test_empty_put_many_returns_no_ids(server_address: str) -> None:
    with Producer(server_address) as producer:
        assert producer.put_many("t", []) == []
        assert producer.put_many("t", iter(())) == []


def test_too_big_item_rejects_the_whole_batch_before_sending(
    small_server: Beanstalkd,
) -> None:
    items: list[object] = [{"i": i} for i in range(3000)]
    items[1234] = "x" * 200
    with Producer(small_server.address) as producer:
        with pytest.raises(JobTooBig) as caught:
            producer.put_many("t", items)
        assert caught.value.index == 1234
        assert caught.value.size == 202
        assert caught.value.limit == 100
        assert str(caught.value) == (
            "item 1234: job body is 202 bytes, server max-job-size is 100 bytes"
        )
        # Nothing was enqueued (the tube was never even used), and the producer still works.
        with greenstalk.Client(small_server.pair) as client:
            assert "t" not in client.tubes()
            assert client.stats()["cmd-put"] == 0
        assert len(producer.put_many("t", items[:10])) == 10


def test_unserialisable_item_names_its_index_and_enqueues_nothing(
    server_address: str, inspector: greenstalk.Client[bytes]
) -> None:
    items: list[object] = [1, 2, 3, {"bad": {1}}, 5]
    with (
        Producer(server_address) as producer,
        pytest.raises(BodyError, match=r"^item 3: "),
    ):
        producer.put_many("t", items)
    assert inspector.stats()["cmd-put"] == 0


def test_invalid_arguments(server_address: str) -> None:
    with Producer(server_address) as producer:
        with pytest.raises(ConfigError, match="batch size"):
            producer.put_many("t", [1], batch_size=0)
        with pytest.raises(ConfigError, match="batch size"):
            producer.put_many("t", [1], batch_size=1001)
        with pytest.raises(ConfigError, match="invalid tube"):
            producer.put_many("bad tube", [1])
        with pytest.raises(ConfigError, match="invalid priority"):
            producer.put_many("t", [1], priority="meh")


def test_draining_server_refuses_bulk_put(
    beanstalkd: Beanstalkd, inspector: greenstalk.Client[bytes]
) -> None:
    assert beanstalkd.proc is not None
    beanstalkd.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while inspector.stats()["draining"] != "true" and time.monotonic() < deadline:
        time.sleep(0.01)
    with Producer(beanstalkd.address) as producer:
        with pytest.raises(ServerDraining, match=r"draining .*\(0 of 2500 jobs were enqueued\)"):
            producer.put_many("t", list(range(2500)))
        # Every refusal was read: the connection is still in step for the next command.
        assert producer.max_job_size > 0
        with pytest.raises(ServerDraining):
            producer.put_many("t", [1])


def test_put_many_of_many_items_enqueues_each_once_in_order(beanstalkd: Beanstalkd) -> None:
    # Behaviour only: how much faster than a greenstalk loop is bench/fig_bulkput.py's
    # business (`make bench`), not a wall-clock bound here.
    items = [{"n": i, "kind": "email", "to": f"user{i}@example.com"} for i in range(20_000)]
    with greenstalk.Client(beanstalkd.pair, encoding=None) as inspector:
        with Producer(beanstalkd.address) as producer:
            ids = producer.put_many("bulk", items)
        assert ids == list(range(ids[0], ids[0] + len(items)))  # in order, none lost
        assert int(inspector.stats_tube("bulk")["current-jobs-ready"]) == len(items)
        assert json.loads(inspector.peek(ids[-1]).body) == items[-1]
