"""Scrape time of ``beanfleet exporter`` on a full beanstalkd:
``python bench/exporter_scrape.py [--tubes 100] [--jobs 100000] [--scrapes 10]``.

Starts its own beanstalkd (binlog on, in a temp dir), puts ``--jobs`` ready jobs spread
over ``--tubes`` tubes, starts the real exporter (``beanfleet exporter``) and times HTTP
scrapes of /metrics: the first (cold: every job id is new to the oldest-ready scan) and the
median of the others (warm: the scan remembers what it learnt).  Prints one table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_common import beanfleet_exe, preload, server


def scrape(port: int) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as response:
        body = response.read()
    return time.perf_counter() - started, body


def reported_duration(body: bytes) -> float:
    for line in body.decode().splitlines():
        if line.startswith("beanfleet_scrape_duration_seconds "):
            return float(line.split()[1])
    raise RuntimeError("no beanfleet_scrape_duration_seconds in the scrape")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tubes", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--scrapes", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as srv:
        per_tube, extra = divmod(args.jobs, args.tubes)
        for i in range(args.tubes):
            preload(srv, f"tube-{i:03d}", per_tube + (1 if i < extra else 0))
        exporter = subprocess.Popen(
            # The whole cold scan, however long (the default --timeout would cut it off).
            [
                *beanfleet_exe(),
                "exporter",
                "--server",
                srv.address,
                "--listen",
                "127.0.0.1:0",
                "--timeout",
                "120",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert exporter.stderr is not None
            line = exporter.stderr.readline()  # "serving ... on http://HOST:PORT/metrics"
            port = int(line.rsplit(":", 1)[1].split("/")[0])
            timings = [scrape(port) for _ in range(max(2, args.scrapes))]
        finally:
            exporter.kill()
            exporter.wait()
    (cold, cold_body), warm = timings[0], timings[1:]
    series = sum(1 for x in cold_body.decode().splitlines() if x and not x.startswith("#"))
    print(f"beanfleet exporter, {args.tubes} tubes, {args.jobs:,} ready jobs")
    print(f"  series per scrape          {series}")
    print(
        f"  first scrape (cold)        {cold * 1000:8.1f} ms HTTP, "
        f"{reported_duration(cold_body) * 1000:8.1f} ms asking beanstalkd"
    )
    median = statistics.median(t for t, _ in warm)
    asking = statistics.median(reported_duration(b) for _, b in warm)
    print(
        f"  later scrapes (median of {len(warm)}) {median * 1000:8.1f} ms HTTP, "
        f"{asking * 1000:8.1f} ms asking beanstalkd"
    )


if __name__ == "__main__":
    main()
