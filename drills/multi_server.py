"""Drill 9: two beanstalkd servers, one of them killed (or frozen) under load.

Two servers, each with its own binlog.  A producer streams numbered jobs with the server
list ``a,b`` (spread placement) and two ``beanfleet work`` processes serve both servers.
After ``before`` seconds server *a* is broken for ``outage`` seconds, then brought back:

``kill9``
    SIGKILL, then started again on the same port and binlog directory.
``sigstop``
    SIGSTOP (a hung host, like a stopped container: connections open, no replies), then
    SIGCONT.

Expected: the producer keeps putting on *b* and the workers keep working there; the jobs
*a* held wait in its binlog (or its frozen memory) and run once it is back; lost == 0.  A job
may run twice only if it was in flight on *a* when it broke (reserved by a worker, or done
with its delete not yet answered).

Figures, all from the producer's acknowledgements and the handlers' execution log:

- **fail-over**: the longest time the producer went without an acknowledged put during the
  outage (from the break to the first acknowledgement, or between two): what a steady
  stream stalls while it moves to *b* (the stream's own gap is 1/rate, ~3 ms at CI size).
  Also given: when the first put *started* after the break was acknowledged (0 when the
  round-robin happened to send it to *b*);
- **jobs/s** acknowledged and completed before the outage and during it (completed: the
  jobs put in it, so from DELAY after the break; and over its second half, once the workers
  have given up on *a*);
- **back**: from *a*'s return until every acknowledged job it held is done.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import greenstalk
from beanfleet.errors import BeanfleetError, ConnectError
from beanfleet.produce.producer import Producer
from harness import (
    Beanstalkd,
    DrillResult,
    ExecLog,
    Fleet,
    StreamProducer,
    fmt_s,
    tube_idle,
    wait_for,
)

NAME = "multi-server"
TITLE = "two beanstalkd servers, one killed or frozen under load"
TUBE = "drill-multi"
MODES = ("kill9", "sigstop")
SIZES: dict[str, dict[str, Any]] = {
    "ci": {"rate": 300, "before": 3.0, "outage": 4.0, "after": 1.0},
    "full": {"rate": 800, "before": 5.0, "outage": 20.0, "after": 5.0},
}
WORKERS = 2
# Every job is put with this delay (seconds), so each server always holds about a second of
# the stream: the jobs a broken server keeps until it returns, whatever the workers' speed.
DELAY = 1
# Per worker: the job its handler runs and one done job whose delete rides with the next
# command (both reserved on the broken server at the moment it broke).
IN_FLIGHT_PER_WORKER = 2


class MultiStreamProducer(StreamProducer):
    """The drill stream through one multi-server Producer kept for the whole run (its
    record of which server failed must outlive an error), noting for every acknowledged put
    the server that took it and for every put when it started."""

    def __init__(self, servers: list[str], tube: str, rate: float) -> None:
        super().__init__(",".join(servers), tube, rate)
        self.servers = servers
        self.placed: dict[int, str] = {}  # seq -> server that acknowledged it
        self.started_at: dict[int, float] = {}  # seq -> when its put began
        self._multi = Producer(servers=servers, timeout=2.0)

    def put_one(self) -> bool:
        seq = self.next_seq
        self.next_seq += 1
        began = time.time()
        try:
            ref = self._multi.put(self.tube, {"seq": seq}, ttr=self.ttr, delay=DELAY)
        except ConnectError as exc:  # MaybeInserted, AllServersDown: outcome unknown here
            self.errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
            self.unknown.append(seq)
            return False
        except (BeanfleetError, greenstalk.Error) as exc:
            self.errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
            self.refused.append((seq, type(exc).__name__))
            return False
        with self.lock:
            self.acked[seq] = int(ref)
            self.ack_times[seq] = time.time()
            self.started_at[seq] = began
            self.placed[seq] = str(getattr(ref, "server", ""))
        return True

    def placed_now(self) -> dict[int, str]:
        """A copy of ``placed``, taken while the stream runs on."""
        with self.lock:
            return dict(self.placed)

    def stop(self, timeout: float = 15.0) -> None:
        super().stop(timeout)
        self._multi.close()


def _break(server: Beanstalkd, mode: str) -> None:
    """Break ``server``; return once it is dead or stopped (a signal lands asynchronously)."""
    proc = server.proc
    assert proc is not None
    if mode == "kill9":
        server.kill()  # waits for the exit
    else:
        proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: _state(proc.pid) == "T", 10, "beanstalkd to stop", interval=0.001)


def _state(pid: int) -> str:
    """The process state letter from /proc (``T``: stopped)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def _restore(server: Beanstalkd, mode: str) -> None:
    if mode == "kill9":
        server.start()
    else:
        assert server.proc is not None
        server.proc.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def _servers(workdir: Path) -> Iterator[tuple[Beanstalkd, Beanstalkd]]:
    a = Beanstalkd(binlog_dir=workdir / "binlog-a")
    b = Beanstalkd(binlog_dir=workdir / "binlog-b")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        for server in (a, b):
            server.kill()  # SIGKILL ends a stopped process too


def _rate(times: list[float], start: float, end: float) -> float:
    if end <= start:
        return 0.0
    return sum(1 for t in times if start <= t < end) / (end - start)


def run_mode(size: str, workdir: Path, mode: str) -> DrillResult:
    params = SIZES[size]
    result = DrillResult(
        f"{NAME}-{mode}",
        f"two servers, one {'killed (kill -9)' if mode == 'kill9' else 'frozen (SIGSTOP)'}",
        run_twice_bound="≤ jobs in flight on the broken server",
    )
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    log = ExecLog(workdir / "exec.log")
    with _servers(workdir) as (a, b):
        servers = [a.address, b.address]
        with Fleet(",".join(servers), workdir, log.path, {TUBE: "record"}) as fleet:
            for i in range(WORKERS):
                fleet.start(f"w{i}")
            producer = MultiStreamProducer(servers, TUBE, params["rate"])
            stream_began = time.time()
            producer.start()
            try:
                time.sleep(params["before"])  # load runs this long before the outage
                wait_for(
                    lambda: set(producer.placed_now().values()) >= set(servers),
                    10,
                    "acknowledged puts on both servers",
                )
                _break(a, mode)
                broken_at = time.time()
                time.sleep(params["outage"])
                restoring_at = time.time()  # a may answer from here on (a probe may be waiting)
                _restore(a, mode)
                back_at = time.time()
                on_a = {s for s, where in producer.placed_now().items() if where == a.address}
                waiting = on_a - log.stats().done_seqs  # a's jobs not done when it returned
                back = wait_for(lambda: log.all_done(waiting), 60, "a's jobs after its return")
                time.sleep(params["after"])
            finally:
                producer.stop_event.set()
            producer.stop()
            acked = producer.acked_seqs()
            wait_for(lambda: log.all_done(acked), 60, "every acknowledged job to be done", 0.1)
            for server in (a, b):
                wait_for(
                    lambda: tube_idle(server.pair, TUBE),  # noqa: B023 - called at once
                    30,
                    f"the tube on {server.address} to be empty",
                    0.1,
                )
            for w in fleet.workers:
                result.check(w.alive, f"worker {w.name} died: {w.tail()}")

    result.count(log, acked)
    entries = log.entries()
    stats = log.stats()
    ack_times = sorted(producer.ack_times.values())
    first_done: dict[int, float] = {}
    first_start: dict[int, float] = {}
    for e in entries:
        if e.seq is None:
            continue
        if e.phase == "done":
            first_done.setdefault(e.seq, e.at)
        elif e.phase == "start":
            first_start.setdefault(e.seq, e.at)
    done_times = sorted(first_done.values())

    after_break = [producer.ack_times[s] for s, t in producer.started_at.items() if t >= broken_at]
    first_put = min(after_break) - broken_at if after_break else None
    in_outage = [t for t in ack_times if broken_at <= t < back_at]
    edges = [broken_at, *in_outage, back_at]
    failover = max(later - earlier for earlier, later in itertools.pairwise(edges))
    # Puts are counted over the outage; jobs done from DELAY after its start (the jobs put
    # during it), so the jobs a keeps do not blur the figure.
    warm = stream_began + DELAY + 0.5  # the first jobs due, the stream at its pace
    puts_before = _rate(ack_times, warm, broken_at)
    puts_during = _rate(ack_times, broken_at, back_at)
    done_before = _rate(done_times, warm, broken_at)
    done_during = _rate(done_times, broken_at + DELAY, back_at)
    # Puts a acknowledged while broken: started after it broke, answered before its return.
    acked_on_a_during = sum(
        1
        for s, where in producer.placed.items()
        if where == a.address
        and producer.started_at[s] >= broken_at
        and producer.ack_times[s] < restoring_at
    )
    late = [t for t in done_times if (broken_at + back_at) / 2 <= t < back_at]
    done_late = len(late) / ((back_at - broken_at) / 2)
    # Jobs that ran twice must have been in flight on a when it broke: put there, started
    # before the outage began.
    twice = stats.started_twice
    outside = sorted(
        s for s in twice if producer.placed.get(s) != a.address or first_start[s] >= broken_at
    )
    unknown = set(producer.unknown)
    result.metrics.update(
        mode=mode,
        rate=params["rate"],
        failover=failover,
        first_put=first_put,
        done_late=done_late,
        puts_before=puts_before,
        puts_during=puts_during,
        done_before=done_before,
        done_during=done_during,
        acked_on_a_during=acked_on_a_during,
        waiting_on_a=len(waiting),
        back=back,
        on_a=len(on_a),
        on_b=len(acked) - len(on_a),
        unknown=len(unknown),
        unknown_done=len(unknown & stats.done_seqs),
        twice_outside=outside[:20],
        completed_twice=len(stats.completed_twice),
        producer_errors=dict(producer.errors.most_common(3)),
    )
    result.recovery = (
        f"fail-over {fmt_s(failover)} (first put {fmt_s(first_put)}); "
        f"a's {len(waiting)} waiting jobs done {fmt_s(back)} after its return"
    )
    result.notes = (
        f"~{params['rate']} puts/s, {params['outage']:g} s outage; acknowledged puts/s "
        f"{puts_before:.0f} before, {puts_during:.0f} during; jobs done/s {done_before:.0f} "
        f"before, {done_during:.0f} during ({done_late:.0f} in its second half); "
        f"{len(unknown)} put(s) cut off (maybe inserted, "
        f"{result.metrics['unknown_done']} of them ran)"
    )
    result.check(
        result.lost == 0, f"{result.lost} acknowledged jobs lost: {result.metrics['lost_seqs']}"
    )
    result.check(not outside, f"jobs ran twice that were not in flight on a: {outside[:10]}")
    bound = WORKERS * IN_FLIGHT_PER_WORKER
    result.check(
        result.run_twice <= bound,
        f"{result.run_twice} jobs ran twice; at most {bound} were in flight on a",
    )
    result.check(acked_on_a_during == 0, f"{acked_on_a_during} puts acknowledged by a while down")
    result.check(bool(in_outage), "no put was acknowledged during the outage")
    result.check(
        any(broken_at <= t < back_at for t in done_times), "no job was done during the outage"
    )
    result.check(bool(waiting), "a held no waiting job when it returned: nothing was tested")
    result.details += [
        (
            f"- mode `{mode}`: {result.sent} acknowledged puts ({len(on_a)} on a, "
            f"{len(acked) - len(on_a)} on b), {result.processed} done, lost {result.lost}, "
            f"started twice {result.run_twice} ({result.metrics['started_twice'][:5]}, "
            f"all in flight on a), completed twice {len(stats.completed_twice)}"
        ),
        (
            f"- fail-over (longest time without an acknowledged put in the outage) "
            f"{fmt_s(failover)}; the first put started after the break was acknowledged "
            f"{fmt_s(first_put)} after it"
        ),
        (
            f"- acknowledged puts/s {puts_before:.0f} before, {puts_during:.0f} during the "
            f"outage; jobs done/s {done_before:.0f} before, {done_during:.0f} during "
            f"({done_late:.0f} in its second half)"
        ),
        (
            f"- a's return: its {len(waiting)} waiting jobs were done {fmt_s(back)} later; "
            f"{len(unknown)} put(s) cut off by the outage, {result.metrics['unknown_done']} "
            "of which were in a's binlog and ran"
        ),
        f"- producer errors: {dict(producer.errors.most_common(2))}",
    ]
    result.seconds = time.monotonic() - started
    return result


def run(size: str, workdir: Path) -> list[DrillResult]:
    return [run_mode(size, workdir / mode, mode) for mode in MODES]
