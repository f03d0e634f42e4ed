"""Typed access to prometheus-client's multiprocess files (its multiprocess module and
mmap_dict are untyped): the one place the worker metrics and the endpoint touch them."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.utils import floatToGoString

# An entry's bytes besides its key: length (4), padding to 8 (at most 8), value and
# timestamp (16).  A bound, not the exact size: allocating a little more costs nothing.
_ENTRY_OVERHEAD = 28


def _allocate(fd: int, offset: int, length: int) -> None:
    # Linux (the fleet's platform); elsewhere (macOS has no posix_fallocate) as before.
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, offset, length)


class ValuesFile:
    """One process's file of one metric type (``counter_PID.db``, ...), memory-mapped.

    Every byte the mapping is about to write is allocated first (``posix_fallocate``):
    prometheus-client grows its files with ``truncate``, which leaves holes, and a write
    through a mapping into a hole that a full file system cannot fill is a SIGBUS, which
    kills the process (no handler can recover from it).  An allocation that finds no space
    raises OSError (ENOSPC) instead, for the caller to switch its metrics off.
    """

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # as open("a+b"): the umask decides
        try:
            _allocate(fd, 0, mmap.PAGESIZE)  # the header: the mapping's first page
        except OSError:
            if os.fstat(fd).st_size == 0:
                os.unlink(path)  # ours and empty: an unreadable file for the endpoint
            raise
        finally:
            os.close(fd)
        self._mapped = MmapedDict(path)  # type: ignore[no-untyped-call]

    def write(self, key: str, value: float) -> None:
        mapped = self._mapped
        if key not in mapped._positions:
            # A new entry is appended at the used end (MmapedDict's layout): allocate it.
            size = len(key.encode()) + _ENTRY_OVERHEAD
            _allocate(mapped._f.fileno(), mapped._used, size)
        mapped.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]

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


def readable(paths: Iterable[str], unreadable: Callable[[str, Exception], None]) -> list[str]:
    """The files of ``paths`` that can be merged; ``unreadable(path, error)`` is called for
    each of the others (0-byte, truncated, garbage), which would fail the whole merge.
    Files gone meanwhile (a worker exiting, tidying) are left out silently."""
    good = []
    for path in paths:
        try:
            merge([path], accumulate=False)  # parses every entry, as the real merge will
        except FileNotFoundError:
            continue
        except Exception as exc:  # whatever a damaged file raises
            unreadable(path, exc)
            continue
        good.append(path)
    return good


def process_dead(pid: int, directory: str) -> None:
    """Remove a process's ``gauge_live*`` files."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
