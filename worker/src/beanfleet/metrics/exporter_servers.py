"""The exporter for several beanstalkd servers: every series gets a ``server`` label.

Each server is asked as the one-server collector asks it (same families, same names); the
families are then merged by name with ``server="HOST:PORT"`` added to every sample, since a
name may appear only once in an exposition.  A server that does not answer yields
``beanfleet_up{server=...} 0`` and no other series (no stale per-tube figures): its jobs
wait in its binlog, and an alert on ``beanfleet_up == 0`` says so.  The servers are asked at
the same time, and a scrape waits for them at most ``timeout`` seconds in all: a frozen one
is ``beanfleet_up{server=...} 0`` and the others are reported as usual.

With one server the exporter keeps :class:`~beanfleet.metrics.exporter.BeanstalkdCollector` and its
output unchanged (no ``server`` label): dashboards and alerts written for it keep working,
and Prometheus' own ``instance`` label already names the exporter, hence the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric as BaseMetric
from prometheus_client.registry import Collector

from beanfleet.metrics.exporter import DEFAULT_TIMEOUT, ServerQuery, server_metrics, tube_metrics


class ServersCollector(Collector):
    """Collects several servers' metrics per scrape, all asked at once."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        scan_limit: int = 100_000,
    ) -> None:
        self.servers = list(servers)
        self.timeout = timeout
        self.queries = {
            s: ServerQuery(s, timeout=timeout, scan_limit=scan_limit) for s in self.servers
        }

    def describe(self) -> list[BaseMetric]:
        return []

    def close(self) -> None:
        for query in self.queries.values():
            query.close()

    def collect(self) -> Iterator[BaseMetric]:
        started = time.monotonic()
        deadline = started + self.timeout
        questions = {server: query.ask() for server, query in self.queries.items()}
        merged: dict[str, BaseMetric] = {}
        up = GaugeMetricFamily(
            "beanfleet_up", "1 if beanstalkd answered this scrape", labels=["server"]
        )
        took = GaugeMetricFamily(
            "beanfleet_scrape_duration_seconds",
            "Time spent asking beanstalkd during this scrape",
            labels=["server"],
        )
        for server, question in questions.items():
            answer, seconds = ServerQuery.wait(question, started, deadline)
            families = [*server_metrics(answer[0]), *tube_metrics(answer[1])] if answer else []
            for family in families:
                target = merged.get(family.name)
                if target is None:
                    target = BaseMetric(family.name, family.documentation, family.type)
                    merged[family.name] = target
                for sample in family.samples:
                    labels = {"server": server, **sample.labels}
                    target.samples.append(sample._replace(labels=labels))
            up.add_metric([server], 0 if answer is None else 1)
            took.add_metric([server], max(0.0, seconds))
        yield from merged.values()
        yield up
        yield took
