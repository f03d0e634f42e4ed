"""A metrics server (`beanfleet exporter`, `beanfleet metrics-endpoint`) as a child process on
a port of its own choosing, and its scrapes parsed into {(name, labels): value}."""

from __future__ import annotations

import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return parse(response.read().decode())


class Served:
    """``argv`` plus ``--listen 127.0.0.1:0``; the port is read from its stderr line
    "serving ... on http://HOST:PORT/metrics" (warning lines before it are kept in
    ``before``)."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            [*argv, "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stderr is not None
        self.before: list[str] = []
        line = self.proc.stderr.readline()
        while line.startswith("beanfleet: warning: "):
            self.before.append(line.rstrip("\n"))
            line = self.proc.stderr.readline()
        assert "/metrics" in line, line
        self.port = int(line.rsplit(":", 1)[1].split("/")[0])

    def scrape(self) -> Samples:
        return scrape(self.port)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
