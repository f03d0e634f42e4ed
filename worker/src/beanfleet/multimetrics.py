"""The exporter for several beanstalkd servers: every series gets a ``server`` label.

Each server is asked as the one-server collector asks it (same families, same names); the
families are then merged by name with ``server="HOST:PORT"`` added to every sample, since a
name may appear only once in an exposition.  A server that does not answer yields
``beanfleet_up{server=...} 0`` and no other series (no stale per-tube figures): its jobs
wait in its binlog, and an alert on ``beanfleet_up == 0`` says so.

With one server the exporter keeps :class:`~beanfleet.metrics.BeanstalkdCollector` and its
output unchanged (no ``server`` label): dashboards and alerts written for it keep working,
and Prometheus' own ``instance`` label already names the exporter, hence the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import greenstalk
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric as BaseMetric
from prometheus_client.registry import Collector

from beanfleet.admin import Admin
from beanfleet.errors import BeanfleetError
from beanfleet.metrics import server_metrics, tube_metrics


class ServersCollector(Collector):
    """Collects several servers' metrics per scrape, one after the other."""

    def __init__(
        self, servers: Sequence[str], *, timeout: float = 3.0, scan_limit: int = 100_000
    ) -> None:
        self.servers = list(servers)
        self.admins = {s: Admin(s, timeout=timeout, scan_budget=scan_limit) for s in servers}
        self._lock = threading.Lock()

    def describe(self) -> list[BaseMetric]:
        return []

    def close(self) -> None:
        for admin in self.admins.values():
            admin.close()

    def collect(self) -> Iterator[BaseMetric]:
        with self._lock:
            merged: dict[str, BaseMetric] = {}
            up = GaugeMetricFamily(
                "beanfleet_up", "1 if beanstalkd answered this scrape", labels=["server"]
            )
            took = GaugeMetricFamily(
                "beanfleet_scrape_duration_seconds",
                "Time spent asking beanstalkd during this scrape",
                labels=["server"],
            )
            for server, admin in self.admins.items():
                started = time.monotonic()
                try:
                    families = [
                        *server_metrics(admin.server_stats()),
                        *tube_metrics(admin.tube_stats()),
                    ]
                except (BeanfleetError, greenstalk.Error, OSError):
                    admin.close()  # reconnect next time
                    families = []
                for family in families:
                    target = merged.get(family.name)
                    if target is None:
                        target = BaseMetric(family.name, family.documentation, family.type)
                        merged[family.name] = target
                    for sample in family.samples:
                        labels = {"server": server, **sample.labels}
                        target.samples.append(sample._replace(labels=labels))
                up.add_metric([server], 1 if families else 0)
                took.add_metric([server], time.monotonic() - started)
            yield from merged.values()
            yield up
            yield took
