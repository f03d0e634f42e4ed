"""Shared plumbing for the benchmarks: servers, worker processes, waiting, /proc readings.

Nothing here is timed on its own; the figure modules time the parts they measure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import greenstalk

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT / "tests"))

from beanstalkd_server import Beanstalkd
from bench_handlers import read_records

PYTHON = sys.executable
CLIENTS = str(BENCH_DIR / "bench_clients.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------------
# Sizes


@dataclass(frozen=True)
class Size:
    name: str
    worker_jobs: int  # figure 1: jobs per worker run
    worker_rounds: int  # figure 1: rounds (each variant once per round, median taken)
    bulk_jobs: int  # figure 2
    bulk_rounds: int
    latency_seconds: float  # figure 3: seconds of paced load per rate
    scaling_jobs: int  # figure 4: jobs per worker count and round
    scaling_rounds: int
    durability_jobs: int  # figure 5: jobs per mode (binlog off, -f 50)
    durability_f0_jobs: int  # figure 5: jobs with -f0 (every write fsynced; slower)
    delay_jobs: int  # figure 6
    delay_spread: float  # figure 6: due times spread over this many seconds
    memory_jobs: int  # figure 7
    memory_steps: int
    servers_jobs: int  # figure 8: jobs per variant and round
    servers_rounds: int
    pickup_counts: tuple[int, ...] = (1, 2)  # figure 9: server counts
    pickup_puts: int = 4  # figure 9: puts per server count
    pickup_gap: float = 0.3  # figure 9: random pause before each put, up to this many s
    jobcost_jobs: int = 1_000  # figure 10: jobs per run (and a quarter of that)


SIZES = {
    "tiny": Size(
        name="tiny",
        worker_jobs=2_000,
        worker_rounds=1,
        bulk_jobs=2_000,
        bulk_rounds=1,
        latency_seconds=0.4,
        scaling_jobs=2_000,
        scaling_rounds=1,
        durability_jobs=1_500,
        durability_f0_jobs=300,
        delay_jobs=60,
        delay_spread=0.5,
        memory_jobs=2_000,
        memory_steps=2,
        servers_jobs=2_000,
        servers_rounds=1,
    ),
    # A shorter run of the same figures (fewer jobs and rounds): for a busy machine, or a
    # quick look at figures 1, 9 and 10 (``--size short --only 1,9,10``).
    "short": Size(
        name="short",
        worker_jobs=20_000,
        worker_rounds=3,
        bulk_jobs=20_000,
        bulk_rounds=2,
        latency_seconds=3.0,
        scaling_jobs=10_000,
        scaling_rounds=1,
        durability_jobs=10_000,
        durability_f0_jobs=1_000,
        delay_jobs=500,
        delay_spread=2.0,
        memory_jobs=20_000,
        memory_steps=2,
        servers_jobs=10_000,
        servers_rounds=1,
        pickup_counts=(1, 2, 4, 8),
        pickup_puts=12,
        pickup_gap=1.0,
        jobcost_jobs=10_000,
    ),
    "full": Size(
        name="full",
        worker_jobs=40_000,
        worker_rounds=5,
        bulk_jobs=100_000,
        bulk_rounds=3,
        latency_seconds=10.0,
        scaling_jobs=40_000,
        scaling_rounds=2,
        durability_jobs=40_000,
        durability_f0_jobs=5_000,
        delay_jobs=2_000,
        delay_spread=4.0,
        memory_jobs=100_000,
        memory_steps=4,
        servers_jobs=40_000,
        servers_rounds=3,
        pickup_counts=(1, 2, 4, 8),
        pickup_puts=20,
        pickup_gap=1.0,
        jobcost_jobs=20_000,
    ),
}

# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    """One line of the table: a measured value, optionally a ratio against a baseline row."""

    label: str
    value: float
    unit: str
    ratio: float | None = None
    ratio_to: str = ""
    goal: str = ""
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Figure:
    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    plot: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # series to draw
    tables: list[list[str]] = field(default_factory=list)  # markdown tables under the notes

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row


# ---------------------------------------------------------------------------------------------
# The server


@contextlib.contextmanager
def server(
    tmp: Path,
    binlog: bool = True,
    fsync_ms: int | None = None,
    never_fsync: bool = False,
) -> Iterator[Beanstalkd]:
    """A fresh beanstalkd for one measurement (binlog on by default, in ``tmp``)."""
    binlog_dir = Path(tempfile.mkdtemp(prefix="binlog-", dir=tmp)) if binlog else None
    extra = ["-F"] if never_fsync else None
    srv = Beanstalkd(binlog_dir=binlog_dir, fsync_ms=fsync_ms, extra=extra)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if binlog_dir is not None:
            shutil.rmtree(binlog_dir, ignore_errors=True)


def server_pid(srv: Beanstalkd) -> int:
    assert srv.proc is not None
    return srv.proc.pid


def control(srv: Beanstalkd, tube: str = "default") -> greenstalk.Client[bytes]:
    """A connection for stats and pause-tube; it ``use``s ``tube`` so that tube (and its
    counters) outlives the workers: beanstalkd frees a tube nobody uses, watches or fills."""
    return greenstalk.Client(srv.pair, encoding=None, use=tube)


def tube_stats(ctl: greenstalk.Client[bytes], tube: str) -> dict[str, int]:
    try:
        stats = ctl.stats_tube(tube)
    except greenstalk.NotFoundError:
        return {}
    return {k: v for k, v in stats.items() if isinstance(v, int)}


def wait_for(
    ctl: greenstalk.Client[bytes],
    tube: str,
    done: str,
    timeout: float,
    interval: float = 0.002,
    procs: Sequence[subprocess.Popen[bytes]] = (),
) -> dict[str, int]:
    """Poll stats-tube until ``done(stats)`` is true; fail early if a worker died."""
    deadline = time.monotonic() + timeout
    while True:
        stats = tube_stats(ctl, tube)
        if stats and eval_cond(done, stats):
            return stats
        for p in procs:
            if p.poll() not in (None, 0):
                raise RuntimeError(f"worker {p.args!r} exited with {p.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"tube {tube}: {done} not reached in {timeout}s: {stats}")
        time.sleep(interval)


def eval_cond(cond: str, stats: dict[str, int]) -> bool:
    """``"cmd-delete>=100"`` / ``"current-waiting==4"`` against a stats-tube mapping."""
    for op in (">=", "=="):
        key, sep, value = cond.partition(op)
        if sep:
            have = stats.get(key.strip(), -1)
            want = int(value)
            return have >= want if op == ">=" else have == want
    raise ValueError(cond)


def drained(n: int) -> str:
    return f"cmd-delete>={n}"


def pause(ctl: greenstalk.Client[bytes], tube: str, seconds: int = 3600) -> None:
    ctl.pause_tube(tube, seconds)


def unpause(ctl: greenstalk.Client[bytes], tube: str) -> None:
    # beanstalkd turns a 0 s pause into 1 ns, so the waiting reserves wake at the next tick.
    ctl.pause_tube(tube, 0)


# ---------------------------------------------------------------------------------------------
# Setup puts (not measured): one raw socket, many puts per write


def body_for(i: int) -> bytes:
    return json.dumps({"n": i, "to": "user@example.com", "template": "welcome"}).encode()


def preload(
    srv: Beanstalkd,
    tube: str,
    n: int,
    delay: int = 0,
    batch: int = 1000,
    ttr: int = 120,
) -> None:
    """Put ``n`` small JSON jobs into ``tube`` as fast as possible (setup, not a figure)."""
    with socket.create_connection(srv.pair) as sock:
        f = sock.makefile("rb")
        sock.sendall(b"use %s\r\n" % tube.encode())
        assert f.readline().startswith(b"USING")
        for start in range(0, n, batch):
            end = min(n, start + batch)
            out = []
            for i in range(start, end):
                body = body_for(i)
                out.append(b"put 1024 %d %d %d\r\n%s\r\n" % (delay, ttr, len(body), body))
            sock.sendall(b"".join(out))
            for _ in range(start, end):
                line = f.readline()
                if not line.startswith(b"INSERTED"):
                    raise RuntimeError(f"preload put failed: {line!r}")


# ---------------------------------------------------------------------------------------------
# Worker processes


@functools.cache
def _scratch_state_dir() -> str:
    return tempfile.mkdtemp(prefix="beanfleet-bench-state-")


@functools.cache
def _scratch_metrics_dir() -> str:
    return tempfile.mkdtemp(prefix="beanfleet-bench-metrics-")


def env_for_workers(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    # `beanfleet work` keeps per-host crash records in its state directory (default: the
    # working directory); a scratch one keeps them out of the checkout.
    env.setdefault("BEANFLEET_STATE_DIR", _scratch_state_dir())
    env.update(extra)
    return env


def beanfleet_exe() -> list[str]:
    exe = Path(PYTHON).with_name("beanfleet")
    if exe.exists():
        return [str(exe)]
    return [PYTHON, "-m", "beanfleet"]  # worker/src/beanfleet/__main__.py


def beanfleet_available() -> tuple[bool, str]:
    """Whether ``beanfleet work --max-jobs`` exists yet (written in parallel with this suite)."""
    try:
        out = subprocess.run(
            [*beanfleet_exe(), "work", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"`beanfleet work --help` failed: {exc}"
    if out.returncode != 0:
        last = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return False, f"`beanfleet work --help` exited {out.returncode}: {last[0]}"
    if "--max-jobs" not in out.stdout:
        return False, "`beanfleet work` has no --max-jobs option"
    return True, ""


def producer_available() -> tuple[bool, str]:
    """Whether ``beanfleet.Producer`` has ``put_many`` and ``schedule_at`` (root names only, so
    the same check holds for an older install)."""
    try:
        import beanfleet as producer
    except ImportError as exc:
        return False, f"cannot import beanfleet: {exc}"
    missing = [
        name
        for name in ("put_many", "schedule_at", "put")
        if not hasattr(getattr(producer, "Producer", None), name)
    ]
    if missing:
        return False, f"beanfleet.Producer lacks {', '.join(missing)}"
    return True, ""


def worker_argv(
    kind: str,
    srv: Beanstalkd,
    tube: str,
    handler: str,
    max_jobs: int | None,
    exe: list[str] | None = None,
) -> list[str]:
    """argv of one worker process: ``beanfleet`` (the real CLI; ``exe``: another install's,
    the old code's) or a baseline client."""
    if kind.startswith("beanfleet"):  # beanfleet[-prefetch][-metrics]
        argv = [
            *(exe or beanfleet_exe()),
            "work",
            "--server",
            srv.address,
            "--tube",
            f"{tube}={handler}",
        ]
        if "-prefetch" in kind:
            argv.append("--prefetch")
        if kind.endswith("-metrics"):
            argv += ["--metrics-dir", _scratch_metrics_dir()]
    else:
        argv = [PYTHON, CLIENTS, kind, "--server", srv.address, "--tube", tube]
        argv += ["--handler", handler]
    if max_jobs is not None:
        argv += ["--max-jobs", str(max_jobs)]
    return argv


def start_workers(
    kind: str,
    srv: Beanstalkd,
    tube: str,
    count: int,
    handler: str = "bench_handlers:noop",
    max_jobs: int | None = None,
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    exe: list[str] | None = None,
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        log: int | object = subprocess.DEVNULL
        if log_dir is not None:
            log = open(log_dir / f"{kind}-{tube}-{i}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                worker_argv(kind, srv, tube, handler, max_jobs, exe),
                env=env or env_for_workers(),
                stdout=log,  # type: ignore[arg-type]
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
    return procs


def stop_workers(procs: Sequence[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGTERM (a worker's graceful stop), then SIGKILL whatever is still running."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_exit(procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop_workers(procs)
            raise RuntimeError(f"worker {p.args!r} did not exit in {timeout}s") from None
        if p.returncode != 0:
            raise RuntimeError(f"worker {p.args!r} exited with {p.returncode}")


@contextlib.contextmanager
def workers_running(
    srv: Beanstalkd,
    kind: str,
    tube: str,
    count: int,
    log_dir: Path,
    paused_jobs: int = 0,
    max_jobs: int | None = None,
    record_to: Path | None = None,
    exe: list[str] | None = None,
) -> Iterator[tuple[greenstalk.Client[bytes], list[subprocess.Popen[bytes]]]]:
    """A control connection and ``count`` workers blocked in reserve on ``tube``; both
    closed on exit, whatever happened.  Every figure with workers starts them this way.

    ``paused_jobs``: preload that many jobs into the tube and pause it first, so nothing
    runs before the clock does.  ``record_to``: run ``bench_handlers:record`` writing there.
    """
    ctl = control(srv, tube)
    procs: list[subprocess.Popen[bytes]] = []
    handler, env = "bench_handlers:noop", None
    if record_to is not None:
        handler, env = "bench_handlers:record", env_for_workers(BENCH_RECORD_DIR=str(record_to))
    try:
        if paused_jobs:
            preload(srv, tube, paused_jobs)
            pause(ctl, tube)
        procs = start_workers(
            kind,
            srv,
            tube,
            count,
            handler=handler,
            max_jobs=max_jobs,
            env=env,
            log_dir=log_dir,
            exe=exe,
        )
        wait_for(ctl, tube, f"current-waiting=={count}", timeout=60, procs=procs)
        yield ctl, procs
    finally:
        stop_workers(procs)
        ctl.close()


def timed_drain(
    ctl: greenstalk.Client[bytes],
    srv: Beanstalkd,
    tube: str,
    procs: Sequence[subprocess.Popen[bytes]],
    n: int,
    settle: Callable[[], object],
    go: Callable[[], object] | None = None,
    group: str = "workers",
) -> dict[str, float]:
    """Time ``procs`` (already blocked in reserve) working off ``n`` jobs: from ``go()``
    (put the jobs; by default unpause the preloaded tube) to stats-tube ``cmd-delete`` = ``n``.

    One clock for figures 1, 4 and 5, so process start-up never counts.  Returns
    ``{"rate": jobs/s}`` plus :meth:`CpuWindow.stop` of ``group`` (the workers) and "server".
    """
    settle()
    window = CpuWindow({group: [p.pid for p in procs], "server": [server_pid(srv)]})
    t0 = time.perf_counter()
    if go is None:
        unpause(ctl, tube)
    else:
        go()
    wait_for(ctl, tube, drained(n), timeout=600, procs=procs)
    elapsed = time.perf_counter() - t0
    return {"rate": n / elapsed, **window.stop()}


@contextlib.contextmanager
def record_dir(tmp: Path) -> Iterator[Path]:
    """Where ``bench_handlers:record`` writes (a file per worker process); removed on exit."""
    path = Path(tempfile.mkdtemp(prefix="rec-", dir=tmp))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def take_records(rec_dir: Path) -> list[tuple[float, float]]:
    """Read and empty the handlers' files (they append with O_APPEND, so they carry on)."""
    records = read_records(str(rec_dir))
    for f in rec_dir.glob("*.txt"):
        os.truncate(f, 0)
    return records


# ---------------------------------------------------------------------------------------------
# /proc readings


def cpu_seconds(pid: int) -> float:
    """utime+stime of one process (all its threads), in seconds."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) in seconds of one process, all threads; children not included
    (beanstalkd is a child of this runner: counting descendants would count it twice)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


class CpuWindow:
    """CPU time of chosen processes over a window, and of the whole machine beside them.

    ``others`` is what every other process on the machine (other people's jobs included)
    used meanwhile: machine busy time minus ours, in % of one core.  A large value means
    the figure shared the cores and is pessimistic.
    """

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.t0 = time.perf_counter()
        self.m0 = machine_busy()
        self.c0 = {k: self._read(v) for k, v in pids.items()}

    @staticmethod
    def _read(pids: list[int]) -> tuple[float, float]:
        splits = [cpu_split(p) for p in pids]
        return sum(u for u, _ in splits), sum(s for _, s in splits)

    def stop(self) -> dict[str, float]:
        """{group: % of one core, group_usr: user-mode part, "others": %, "elapsed": s}."""
        elapsed = time.perf_counter() - self.t0
        m1 = machine_busy()
        out: dict[str, float] = {}
        ours = 0.0
        for k, v in self.pids.items():
            u1, s1 = self._read(v)
            u0, s0 = self.c0[k]
            out[k] = 100 * (u1 - u0 + s1 - s0) / elapsed
            out[k + "_usr"] = 100 * (u1 - u0) / elapsed
            ours += out[k]
        machine = 100 * (m1 - self.m0) / elapsed
        out["others"] = max(0.0, machine - ours)
        out["elapsed"] = elapsed
        return out


def settle(max_wait: float, threshold: float = 15.0, window: float = 0.5) -> float:
    """Wait (at most ``max_wait`` s) until other processes use < ``threshold`` % of a core.

    Other people's jobs on the same two cores skew every figure; a short wait for a quiet
    moment costs less than a noisy number.  Returns the busy % last seen (before we start).
    """
    deadline = time.monotonic() + max_wait
    while True:
        b0, t0 = machine_busy(), time.perf_counter()
        time.sleep(window)
        busy = 100 * (machine_busy() - b0) / (time.perf_counter() - t0)
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def machine_busy() -> float:
    """Seconds of non-idle CPU time the whole machine has used since boot (all cores)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# ---------------------------------------------------------------------------------------------
# Statistics


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


# ---------------------------------------------------------------------------------------------
# The machine


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    hyper = ""
    with contextlib.suppress(OSError), open("/sys/class/dmi/id/sys_vendor") as f:
        hyper = f.read().strip()
    try:
        bs = subprocess.run(
            [shutil.which("beanstalkd") or "/usr/bin/beanstalkd", "-v"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        bs = "unknown"
    os_name = platform.platform()
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    return {
        "CPU": cpu + (f" ({hyper})" if hyper else ""),
        "Cores": str(os.cpu_count()),
        "RAM": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "OS": os_name,
        "Kernel": platform.release(),
        "Python": platform.python_version() + f" ({platform.python_implementation()})",
        "beanstalkd": bs,
        "Date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
