"""The host's worker metrics: the sum of every worker process's files in the metrics
directory (:mod:`beanfleet.metrics.worker`), tidied before each scrape.

Tidying, under the scrape's lock so a scrape never sees a half-done step:

* a process that is gone (its pid no longer exists, or its file predates the last boot)
  loses its ``gauge_live*`` files, so ``beanfleet_worker_processes`` counts live ones only
  (a worker that exits cleanly removes its own; one killed by SIGKILL or OOM cannot);
* its counter and histogram files are folded into one ``counter_archive.db`` /
  ``histogram_archive.db`` and deleted.  Their values stay in the sums (a counter that
  went down would look like a reset to ``rate()``), and the directory does not grow by two
  files per recycled worker.  The archive is replaced atomically before the folded files are
  deleted: an endpoint killed in between counts those processes twice (a jump up, never a
  reset).

A file that cannot be read (0 bytes, truncated: a disk that filled up, a copy cut short)
is skipped with one warning on stderr, and the rest is served: one bad file must not fail
every scrape.  A dead process's unreadable file is deleted when its process is folded.
Tidying that fails (no space left for the archive) is said once; the files are then served
as they are, still summed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import threading
import time
from collections.abc import Callable, Iterable

import click
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from beanfleet.metrics import valuefiles
from beanfleet.wire.client import describe_os_error

_FILE_RE = re.compile(r"^(counter|histogram|gauge_[a-z]+)_(\d+)\.db$")
FOLDED_TYPES = ("counter", "histogram")


def boot_time() -> float:
    """When this host booted (wall clock); /proc/stat may be hidden in the sandbox."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


Unreadable = Callable[[str, Exception], None]


def tidy(directory: str, unreadable: Unreadable) -> None:
    """Drop dead processes' live gauges; fold their counters and histograms into archives
    (``unreadable(path, error)``: a file that cannot be folded, deleted with the others)."""
    booted = boot_time()
    dead: dict[str, list[str]] = {}
    for path in glob.glob(os.path.join(directory, "*.db")):
        match = _FILE_RE.match(os.path.basename(path))
        if match is None:
            continue
        typ, pid = match.group(1), int(match.group(2))
        try:
            stale = os.stat(path).st_mtime < booted
        except FileNotFoundError:
            continue  # a worker exiting now removed it
        if pid_alive(pid) and not stale:
            continue
        if typ.startswith("gauge_live"):
            _unlink(path)
        elif typ in FOLDED_TYPES:
            dead.setdefault(typ, []).append(path)
    for typ, paths in dead.items():
        _fold(directory, typ, paths, unreadable)


def _fold(directory: str, typ: str, paths: list[str], unreadable: Unreadable) -> None:
    archive = os.path.join(directory, f"{typ}_archive.db")
    sources = [archive, *paths] if os.path.exists(archive) else paths
    merged = valuefiles.merge(valuefiles.readable(sources, unreadable), accumulate=False)
    temporary = os.path.join(directory, f".{typ}_archive.tmp")  # not *.db: never collected
    _unlink(temporary)
    out = valuefiles.ValuesFile(temporary)
    try:
        for key, value in _values(merged):
            out.write(key, value)
    finally:
        out.close()
    os.replace(temporary, archive)
    for path in paths:
        _unlink(path)


def _values(metrics: Iterable[Metric]) -> Iterable[tuple[str, float]]:
    for metric in metrics:
        for sample in metric.samples:
            names = list(sample.labels)
            key = valuefiles.key(
                metric.name,
                sample.name,
                names,
                [sample.labels[n] for n in names],
                metric.documentation,
            )
            yield key, sample.value


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class MetricsDirCollector(Collector):
    """Collects a metrics directory; each scrape tidies it first (one scrape at a time)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._tidy()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            self._tidy()
            paths = glob.glob(os.path.join(self.directory, "*.db"))
            good = valuefiles.readable(paths, self._unreadable)
            return valuefiles.merge(good, accumulate=True)

    def _tidy(self) -> None:
        try:
            tidy(self.directory, self._unreadable)
        except OSError as exc:
            self._warn(
                "tidy",
                f"cannot tidy metrics directory {self.directory}: {describe_os_error(exc)}; "
                "serving its files as they are",
            )
        else:
            self._warned.discard("tidy")  # say it again if it fails again

    def _unreadable(self, path: str, error: Exception) -> None:
        reason = " ".join((str(error) or type(error).__name__).split())
        self._warn(path, f"skipping unreadable metrics file {path}: {reason}")

    def _warn(self, key: str, message: str) -> None:
        """Once per file or trouble: it lasts, and scrapes come every few seconds."""
        if key not in self._warned:
            self._warned.add(key)
            click.echo(f"beanfleet: warning: {message}", err=True)


def make_registry(directory: str | os.PathLike[str]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsDirCollector(directory))
    return registry
