"""Admin commands, the exporter and a worker over two real beanstalkd servers."""

from __future__ import annotations

import json
import threading
from typing import Any

from beanfleet.cli import main
from beanfleet.metrics.exporter_servers import ServersCollector
from beanfleet.wire.jobref import JobRef
from beanfleet.work.pool import ServersWorker
from beanstalkd_server import Beanstalkd
from click.testing import CliRunner
from multi_support import peek_body, put_direct, tube_count, wait_for

Pair = tuple[Beanstalkd, Beanstalkd]


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_colliding_ids_peek_delete_and_kick_the_named_server(pair: Pair) -> None:
    a, b = pair
    assert put_direct(a, "t", b'"on a"') == 1
    assert put_direct(b, "t", b'"on b"') == 1  # job 1 on each
    both = f"{a.address},{b.address}"
    code, out, _ = cli("peek", "-s", both, "--job", f"{b.address}/1", "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["id"] == f"{b.address}/1" and shown["body"] == '"on b"'
    code, _, err = cli("delete", "-s", a.address, "-s", b.address, "--job", "1")
    assert code == 2 and "ambiguous" in err and err.count("\n") == 1
    code, out, _ = cli("delete", "-s", both, "--job", f"{a.address}/1")
    assert code == 0 and out.strip() == f"deleted job {a.address}/1"
    assert peek_body(a, 1) is None and peek_body(b, 1) == b'"on b"'
    code, out, _ = cli("put", "-s", both, "-t", "t", '{"x": 1}')
    assert code == 0 and "/" in out  # SERVER/ID once there are several servers


def test_stats_buried_kick_and_pause_span_every_server(pair: Pair) -> None:
    a, b = pair
    both = f"{a.address},{b.address}"
    for server in (a, b):
        for _ in range(2):
            put_direct(server, "t", b"{}")
        import greenstalk

        with greenstalk.Client(server.pair, encoding=None, watch="t") as client:
            client.bury(client.reserve(timeout=1))
    code, out, _ = cli("stats", "-s", both, "--json")
    assert code == 0, out
    stats = json.loads(out)
    tube = next(t for t in stats["tubes"] if t["name"] == "t")
    assert (tube["ready"], tube["buried"]) == (2, 2)
    assert set(tube["servers"]) == {a.address, b.address}
    code, out, _ = cli("buried", "-s", both, "-t", "t")
    assert code == 0
    assert f"{a.address}/" in out and f"{b.address}/" in out
    code, out, _ = cli("kick", "-s", both, "-t", "t", "--count", "10")
    assert code == 0 and out.strip() == "kicked 2 jobs in tube 't'"
    assert tube_count(a, "t") == tube_count(b, "t") == 2
    code, out, _ = cli("pause", "-s", both, "-t", "t", "--seconds", "30")
    assert code == 0
    for server in (a, b):
        import greenstalk

        with greenstalk.Client(server.pair) as client:
            assert int(client.stats_tube("t")["pause"]) == 30


def test_a_dead_server_is_named_and_the_others_still_shown(pair: Pair) -> None:
    a, b = pair
    put_direct(b, "t", b"{}")
    a.kill()
    code, out, err = cli("stats", "-s", f"{a.address},{b.address}")
    assert code == 1
    assert a.address in err and "beanfleet: error:" in err
    assert "beanstalkd 1." in out or b.address in out
    assert "all" in out  # the summed row of tube t from the live server


def test_exporter_labels_every_series_and_drops_a_dead_servers(pair: Pair) -> None:
    a, b = pair
    put_direct(a, "ta", b"{}")
    put_direct(b, "tb", b"{}")
    collector = ServersCollector([a.address, b.address])
    try:
        families = list(collector.collect())
        samples = [s for f in families for s in f.samples]
        assert all("server" in s.labels for s in samples)
        ups = {s.labels["server"]: s.value for s in samples if s.name == "beanfleet_up"}
        assert ups == {a.address: 1, b.address: 1}
        a.kill()
        samples = [s for f in collector.collect() for s in f.samples]
        ups = {s.labels["server"]: s.value for s in samples if s.name == "beanfleet_up"}
        assert ups == {a.address: 0, b.address: 1}
        tubes = {s.labels.get("tube") for s in samples if s.labels.get("server") == a.address}
        assert tubes == {None}  # no stale per-tube series for the dead server
        names = [f.name for f in collector.collect()]
        assert len(names) == len(set(names))  # each family once
    finally:
        collector.close()


def test_one_worker_process_serves_both_servers_and_survives_a_kill(pair: Pair) -> None:
    a, b = pair
    seen: list[Any] = []

    def handler(data: Any, job: Any) -> None:
        seen.append((data, job.id))

    worker = ServersWorker([a.address, b.address], {"w": handler}, state_dir=None)
    thread = threading.Thread(target=worker.run, daemon=True)
    for n in range(5):
        put_direct(a, "w", b"%d" % n)
        put_direct(b, "w", b"%d" % (100 + n))
    thread.start()
    try:
        wait_for(lambda: len(seen) == 10, 20, "both servers' jobs to run")
        ids = [job_id for _, job_id in seen]
        assert all(isinstance(job_id, JobRef) for job_id in ids)
        assert len(set(ids)) == 10  # job 1 on a and job 1 on b are different jobs
        assert {str(job_id) for job_id in ids} >= {f"{a.address}/1", f"{b.address}/1"}
        a.kill()
        for n in range(5):
            put_direct(b, "w", b"%d" % (200 + n))
        wait_for(lambda: len(seen) == 15, 20, "b's jobs to run while a is down")
        a.start()
        put_direct(a, "w", b"300")
        wait_for(lambda: any(d == 300 for d, _ in seen), 30, "a's job to run after its restart")
        assert tube_count(a, "w") == tube_count(b, "w") == 0
        assert tube_count(a, "w", "reserved") == 0
    finally:
        worker.request_stop()
        thread.join(timeout=15)
    assert not thread.is_alive()
    data = [d for d, _ in seen]
    assert len(data) == len(set(data))  # nothing ran twice
