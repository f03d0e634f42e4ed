"""Priority 9: the fleet is observable (issue "observability"), checked through the real
Prometheus on the `monitor` machine and its HTTP API: every exporter and metrics endpoint
is scraped, the series carry the right labels, the buried and down alerts fire and clear,
every query of the Grafana dashboard returns data, and the metrics ports are closed to
the outsider.

Only fleets with a monitor machine (the docker fleets; the two-VM fleet has none). The
Vagrant inventory sets a 5 s scrape interval and BeanstalkdDown's `for:` to 10 s."""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from typing import Any

import dashboard
import greenstalk
import pytest
from beanfleet import Producer
from fleetlib import Fleet, Stream, wait_for

PROMETHEUS_PORT = 9090
EXPORTER_PORT = 9650
WORKER_PORT = 9651
# Grafana's "All" for the tube and pool variables; a rate window a few scrapes long.
VARIABLES = {"$__rate_interval": "1m", "$tube": ".*", "$pool": ".*"}
PROBE = (
    'python3 -c "import socket,sys; s=socket.socket(); s.settimeout(3); '
    "s.connect(('{addr}', {port})); s.sendall(b'GET /metrics HTTP/1.0\\r\\n\\r\\n'); "
    'sys.stdout.write(s.recv(12).decode())"'
)


@pytest.fixture(autouse=True)
def _needs_monitor(fleet: Fleet) -> None:
    if "monitor" not in fleet.machines:
        pytest.skip("this fleet has no monitor machine")


def api(fleet: Fleet, path: str, **params: str) -> Any:
    """GET Prometheus' API on the monitor machine; its `data`."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    url = f"http://{fleet.address('monitor')}:{PROMETHEUS_PORT}/api/v1/{path}{query}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def query(fleet: Fleet, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api(fleet, "query", query=expr)["result"]
    return result


def firing(fleet: Fleet, alert: str, **labels: str) -> list[dict[str, Any]]:
    return [
        a
        for a in api(fleet, "alerts")["alerts"]
        if a["labels"]["alertname"] == alert
        and a["state"] == "firing"
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def targets(fleet: Fleet) -> dict[str, str]:
    return {t["scrapeUrl"]: t["health"] for t in api(fleet, "targets")["activeTargets"]}


def test_every_target_is_up(fleet: Fleet) -> None:
    expected = {f"http://{fleet.address(q)}:{EXPORTER_PORT}/metrics" for q in fleet.queues} | {
        f"http://{fleet.address(w)}:{WORKER_PORT}/metrics" for w in fleet.workers
    }

    def all_up() -> dict[str, str] | None:
        found = targets(fleet)
        return found if set(found) == expected and set(found.values()) == {"up"} else None

    wait_for("every scrape target up", all_up, 60, 1)


def test_queue_and_worker_series_have_their_labels(fleet: Fleet) -> None:
    exporters = {f"{fleet.address(q)}:{EXPORTER_PORT}" for q in fleet.queues}
    endpoints = {f"{fleet.address(w)}:{WORKER_PORT}" for w in fleet.workers}
    created = 'beanfleet_tube_jobs_created_total{tube="record"}'
    before = {s["metric"]["instance"]: float(s["value"][1]) for s in query(fleet, created)}
    with Stream(fleet, servers=fleet.servers if len(fleet.queues) > 1 else None) as stream:
        wait_for("20 record jobs put", lambda: stream.count() >= 20 or None, 30, 0.2)
    fleet.wait_recorded(set(stream.seqs))

    def tube_series() -> list[dict[str, Any]] | None:
        # Every exporter's count went up (the stream spreads over every queue host).
        found = query(fleet, created)
        grew = {
            s["metric"]["instance"]
            for s in found
            if float(s["value"][1]) > before.get(s["metric"]["instance"], 0)
        }
        return found if grew == exporters else None

    for series in wait_for("record jobs counted by every exporter", tube_series, 60, 1):
        assert series["metric"]["job"] == "beanstalkd"
    ready = query(fleet, 'beanfleet_tube_jobs{tube="record"}')
    assert {s["metric"]["state"] for s in ready} >= {"ready", "reserved", "delayed", "buried"}

    def deleted() -> list[dict[str, Any]] | None:
        found = query(
            fleet, 'beanfleet_worker_jobs_total{pool="checks", tube="record", outcome="deleted"}'
        )
        every_host = {s["metric"]["instance"] for s in found} == endpoints
        # The endpoints' counters add up to at least this test's jobs (scrapes lag a bit).
        counted = sum(float(s["value"][1]) for s in found) >= len(stream.seqs)
        return found if every_host and counted else None

    series = wait_for("this test's record jobs counted on every worker host", deleted, 60, 1)
    assert all(s["metric"]["job"] == "beanfleet_workers" for s in series)
    # Per pool, never per job: the label names are the documented ones.
    labels = {k for s in query(fleet, "beanfleet_worker_jobs_total") for k in s["metric"]}
    assert labels == {"__name__", "instance", "job", "pool", "tube", "outcome"}
    processes = {
        (s["metric"]["instance"], s["metric"]["pool"]): float(s["value"][1])
        for s in query(fleet, "beanfleet_worker_processes")
    }
    for endpoint in endpoints:
        assert processes[(endpoint, "checks")] == 2, processes


def test_a_buried_job_fires_the_buried_alert(fleet: Fleet) -> None:
    host, port = fleet.server.rsplit(":", 1)
    instance = f"{fleet.address(fleet.queues[0])}:{EXPORTER_PORT}"
    count = f'beanfleet_tube_jobs{{tube="fail", state="buried", instance="{instance}"}}'
    before = sum(float(s["value"][1]) for s in query(fleet, count))
    with Producer(fleet.server) as producer:
        job_id = int(producer.put("fail", {"n": 1}))
    try:

        def buried() -> list[dict[str, Any]] | None:
            mine = sum(float(s["value"][1]) for s in query(fleet, count)) > before
            alerts = firing(fleet, "BeanstalkdJobsBuried", tube="fail", instance=instance)
            return alerts if mine else None

        alert = wait_for("this job buried and BeanstalkdJobsBuried firing", buried, 90, 1)
        assert alert[0]["labels"]["severity"] == "warning"

        # The failing handler's attempts are counted as retried, then buried.
        def outcomes() -> set[str] | None:
            found = query(fleet, 'beanfleet_worker_jobs_total{tube="fail"} > 0')
            names = {s["metric"]["outcome"] for s in found}
            return names if names >= {"retried", "buried"} else None

        wait_for("retried and buried counted for tube fail", outcomes, 60, 1)
    finally:
        with greenstalk.Client((host, int(port))) as client:
            client.delete(job_id)


def test_stopping_beanstalkd_fires_the_down_alert_and_starting_it_clears_it(
    fleet: Fleet,
) -> None:
    queue = fleet.queues[0]
    instance = f"{fleet.address(queue)}:{EXPORTER_PORT}"
    up = f'beanfleet_up{{instance="{instance}"}}'
    tube_series = f'count(beanfleet_tube_jobs{{instance="{instance}"}})'
    wait_for("beanfleet_up 1", lambda: [s for s in query(fleet, up) if s["value"][1] == "1"], 60, 1)
    assert query(fleet, tube_series), "no per-tube series before the stop"
    fleet.check(queue, "systemctl stop beanstalkd")
    try:
        wait_for(
            "beanfleet_up 0", lambda: [s for s in query(fleet, up) if s["value"][1] == "0"], 60, 1
        )
        # No stale numbers: the per-tube series are gone while beanstalkd is down.
        wait_for("no per-tube series", lambda: not query(fleet, tube_series) or None, 60, 1)
        wait_for(
            "BeanstalkdDown firing",
            lambda: firing(fleet, "BeanstalkdDown", instance=instance),
            90,
            1,
        )
    finally:
        fleet.check(queue, "systemctl start beanstalkd")
    wait_for("beanfleet_up 1", lambda: [s for s in query(fleet, up) if s["value"][1] == "1"], 60, 1)
    wait_for(
        "BeanstalkdDown cleared",
        lambda: not firing(fleet, "BeanstalkdDown", instance=instance) or None,
        90,
        1,
    )
    assert query(fleet, tube_series), "per-tube series did not come back"


def test_every_dashboard_query_returns_data(fleet: Fleet) -> None:
    queries = dashboard.queries(dashboard.load(), VARIABLES)
    assert len(queries) >= 10
    missing: dict[str, str] = dict(queries)

    def real(expr: str) -> bool:
        return any(not math.isnan(float(s["value"][1])) for s in query(fleet, expr))

    # Jobs keep running, so the rates and quantiles over the last minute have samples.
    with Stream(fleet, servers=fleet.servers if len(fleet.queues) > 1 else None):

        def all_answered() -> bool | None:
            for title, expr in list(missing.items()):
                if real(expr):
                    del missing[title]
            return not missing or None

        try:
            wait_for("data for every dashboard query", all_answered, 120, 2)
        except pytest.fail.Exception:
            pytest.fail(f"dashboard queries without data after 120 s: {missing}")


def test_metrics_ports_are_closed_to_the_outsider_and_open_to_the_monitor(fleet: Fleet) -> None:
    ports = [(q, EXPORTER_PORT) for q in fleet.queues] + [(w, WORKER_PORT) for w in fleet.workers]
    for machine, port in ports:
        probe = PROBE.format(addr=fleet.address(machine), port=port)
        assert fleet.check("monitor", probe).startswith("HTTP/1."), (machine, port)
        res = fleet.run_outside(probe)
        assert res.returncode != 0, (machine, port, res.stdout)
        assert "timed out" in res.stderr or "refused" in res.stderr, (machine, port, res.stderr)


def test_monitoring_off_removes_the_endpoints_and_on_brings_them_back(fleet: Fleet) -> None:
    # Two provisions of the queue and worker hosts: one release proves it (both managers).
    if fleet.release != "bookworm":
        pytest.skip("run on the bookworm fleet only")
    limit = ",".join([*fleet.queues, *fleet.workers])
    off = fleet.dir / "monitoring-off.json"
    off.write_text(json.dumps({"monitoring_enabled": False}))
    res = fleet.fleet_sh("provision", "--", "-e", f"@{off}", "--limit", limit)
    (fleet.dir / "provision-monitoring-off.log").write_text(res.stdout + res.stderr)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for queue in fleet.queues:
        assert fleet.run(queue, "systemctl is-active beanfleet-exporter").returncode != 0
        fleet.check(queue, "test ! -e /etc/systemd/system/beanfleet-exporter.service")
        table = fleet.check(queue, "nft list table inet beanfleet_beanstalkd")
        assert "dport 11300" in table and "beanfleet_exporter" not in table, table
    for worker, manager in fleet.workers.items():
        status = (
            "systemctl is-active beanfleet-metrics"
            if manager == "systemd"
            else "supervisorctl status beanfleet-metrics"
        )
        assert fleet.run(worker, status).returncode != 0, worker
        assert fleet.run(worker, "nft list table inet beanfleet_metrics").returncode != 0
        fleet.check(worker, "test ! -e /etc/beanfleet/metrics.nft")
        assert "--metrics-dir" not in fleet.check(worker, "ps -eo args | grep '[b]eanfleet work'")

    res = fleet.fleet_sh("provision", "--", "--limit", limit)
    (fleet.dir / "provision-monitoring-on.log").write_text(res.stdout + res.stderr)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # Prometheus scrapes them all again.
    test_every_target_is_up(fleet)
