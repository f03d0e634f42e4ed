"""Typed access to prometheus-client's multiprocess files (its multiprocess module and
mmap_dict are untyped): the one place the worker metrics and the endpoint touch them."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.utils import floatToGoString


class ValuesFile:
    """One process's file of one metric type (``counter_PID.db``, ...), memory-mapped."""

    def __init__(self, path: str) -> None:
        self._mapped = MmapedDict(path)  # type: ignore[no-untyped-call]

    def write(self, key: str, value: float) -> None:
        self._mapped.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._mapped.close()  # type: ignore[no-untyped-call]


def key(metric: str, sample: str, names: Iterable[str], values: Iterable[str], text: str) -> str:
    return mmap_key(metric, sample, list(names), list(values), text)


def bound_label(bound: float) -> str:
    """A histogram bucket's ``le`` value as prometheus-client writes it (``+Inf``, ``1.0``)."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


def merge(paths: list[str], *, accumulate: bool) -> list[Metric]:
    """The metrics of ``paths`` summed (``accumulate=False``: histogram buckets left
    non-cumulative, as stored, to write back)."""
    return list(MultiProcessCollector.merge(paths, accumulate=accumulate))  # type: ignore[no-untyped-call]


def process_dead(pid: int, directory: str) -> None:
    """Remove a process's ``gauge_live*`` files."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
