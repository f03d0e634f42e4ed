"""Drill 5: the binlog disk fills up.

The binlog directory is a 2 MiB tmpfs (``mount -t tmpfs -o size=2m``; a loop-mounted ext4
image if tmpfs cannot be mounted); beanstalkd runs with ``-s 262144`` because its default
10 MiB binlog files do not fit at all (it refuses to start: ``falloc ... No space left on
device``).  Two workers and a producer run; then a backlog in a tube nobody watches fills
the disk.  While it is full: what does the producer get, do the workers stay up, what
happens to a retry (release with a delay) and a bury?  Then space returns (delete the
backlog; if that does not free enough, grow the filesystem) and service must resume with
nothing acknowledged lost.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from beanfleet.produce.producer import Producer
from beanfleet.wire.connection import Connection as _Connection
from harness import (
    DrillError,
    DrillResult,
    binlog_bytes,
    stream_stage,
    tube_idle,
    wait_for,
)


def Connection(address: tuple[str, int]) -> _Connection:
    """A raw connection whose reads give up after 10 s instead of hanging the drill."""
    conn = _Connection(address)
    conn.sock.settimeout(10)
    return conn


NAME = "disk-full"
TUBE = "drill-disk"
BALLAST = "drill-ballast"
MARK = 2_000_000  # fails its first attempt: its retry happens while the disk is full
SIZES = {
    "ci": {"rate": 100, "full_for": 3.0, "after": 1.5},
    "full": {"rate": 200, "full_for": 10.0, "after": 5.0},
}


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


@contextlib.contextmanager
def small_fs(mountpoint: Path, workdir: Path) -> Iterator[str]:
    """Mount a 2 MiB filesystem at ``mountpoint``; yield its kind; unmount on exit."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    kind = ""
    r = _run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mountpoint)])
    if r.returncode == 0:
        kind = "tmpfs"
    else:
        image = workdir / "binlog.img"
        _run(["truncate", "-s", "4M", str(image)])
        made = _run(["mkfs.ext4", "-q", "-F", str(image)])
        r2 = _run(["mount", "-o", "loop", str(image), str(mountpoint)])
        if made.returncode != 0 or r2.returncode != 0:
            raise RuntimeError(
                f"cannot mount a small filesystem: tmpfs: {r.stderr.strip()}; "
                f"loop ext4: {r2.stderr.strip()}"
            )
        kind = "ext4-loop"
    try:
        yield kind
    finally:
        for _ in range(20):  # bounded: the server may take a moment to let go of its files
            if _run(["umount", str(mountpoint)]).returncode == 0:
                break
            time.sleep(0.1)


def _raw_put(conn: _Connection, body: bytes, delay: int = 0, ttr: int = 60) -> bytes:
    conn.send([_Connection.put_command(body, 0, delay, ttr)])
    status, _ = conn.read_reply()
    return status


def _fill(conn: _Connection, limit: int = 5000) -> tuple[int, bytes]:
    """Put ballast jobs (8 KiB, then 1 KiB, then 16 bytes) until the server refuses even
    the smallest; return (accepted, refusal)."""
    conn.call(b"use " + BALLAST.encode(), b"USING")
    accepted = 0
    status = b""
    for size in (8192, 1024, 16):
        body = b"b" * size
        for _ in range(limit):
            status = _raw_put(conn, body)
            if status != b"INSERTED":
                break
            accepted += 1
        else:
            raise RuntimeError(f"the disk did not fill after {limit} ballast jobs")
    return accepted, status


def _drain_ballast(address: tuple[str, int]) -> int:
    """Delete the backlog (the operator's fix: drop the stuck tube's jobs)."""
    conn = Connection(address)
    deleted = 0
    try:
        conn.call(b"watch " + BALLAST.encode(), b"WATCHING")
        conn.call(b"ignore default", b"WATCHING")
        for _ in range(5000):
            conn.send([b"reserve-with-timeout 0"])
            status, values = conn.expect(b"RESERVED", b"TIMED_OUT")
            if status == b"TIMED_OUT":
                break
            conn.read_chunk(int(values[1]))
            conn.call(b"delete " + values[0], b"DELETED")
            deleted += 1
        return deleted
    finally:
        conn.close()


def run(size: str, workdir: Path) -> list[DrillResult]:
    params = SIZES[size]
    result = DrillResult(
        NAME,
        "binlog disk full",
        run_twice_bound="only the job that fails its first attempt",
    )
    started = time.monotonic()
    mountpoint = workdir / "binlog"  # where the stage puts the server's binlog
    facts: dict[str, Any] = {}
    with small_fs(mountpoint, workdir) as kind:
        facts["fs"] = kind
        stream = stream_stage(
            workdir,
            TUBE,
            params["rate"],
            worker_options=["--backoff-base", "1", "--max-retries", "5"],
            extra=["-s", "262144"],
        )
        with stream as (log, server, fleet, producer):
            workers = fleet.workers
            wait_for(lambda: len(producer.acked) >= 50, 10, "the stream to start")
            with Producer(server.address) as p:
                # Ready in 2 s, i.e. while the disk is full; fails once, then retries.
                mark_id = p.put(TUBE, {"seq": MARK, "fail_first": True}, delay=2, ttr=4)
            ballast = Connection(server.pair)
            accepted, refusal = _fill(ballast)
            full_at = time.time()
            facts["ballast_jobs"] = accepted
            facts["ballast_refusal"] = refusal.decode()
            facts["binlog_bytes_full"] = binlog_bytes(mountpoint)
            # Probe what each command gets while full, on a job of our own.
            facts["replies_while_full"] = _probe_commands(server.pair)
            time.sleep(params["full_for"])  # hold the disk full for the stated time
            facts["workers_alive_while_full"] = all(w.alive for w in workers)
            errors_full = Counter(producer.errors)
            # Space returns, first by deleting the backlog.
            drained = _drain_ballast(server.pair)
            facts["ballast_deleted"] = drained
            freed_at = time.time()
            remedy = "deleted the backlog"
            facts["after_delete"] = _binlog_files(mountpoint)
            try:
                wait_for(lambda: _put_works(server.pair), 5, "puts to work again", 0.1)
                resumed_at = time.time()
            except Exception:
                facts["after_delete"] = _binlog_files(mountpoint)
                remedy = "deleting the backlog freed nothing within 5 s; grew the filesystem"
                grown_at = time.time()
                if kind == "tmpfs":
                    _run(["mount", "-o", "remount,size=16m", str(mountpoint)])
                wait_for(lambda: _put_works(server.pair), 10, "puts to work again", 0.1)
                resumed_at = time.time()
                freed_at = grown_at
            facts["remedy"] = remedy
            facts["resumed_after"] = resumed_at - freed_at
            acked_before = len(producer.acked)
            wait_for(
                lambda: len(producer.acked) > acked_before + 20,
                10,
                "the producer to get acknowledgements again",
            )
            time.sleep(params["after"])
            producer.stop()
            acked = producer.acked_seqs() | {MARK}
            ids = {**producer.acked, MARK: mark_id}
            try:
                wait_for(
                    lambda: log.all_done(acked),
                    8,
                    "every acknowledged job to be done",
                    0.1,
                )
            except DrillError:
                # beanstalkd 1.12 orphans a job whose `release <delay>` (OUT_OF_MEMORY) or
                # `bury` (INTERNAL_ERROR) failed for want of binlog space: it is taken off
                # the connection's reserved list and put nowhere, so neither its TTR, nor
                # closing the connection, nor delete can reach it.  Its records are still
                # in the binlog: a restart of beanstalkd brings it back.
                pending = acked - log.stats().done_seqs
                facts["stuck"] = {seq: _job_state(server.pair, ids[seq]) for seq in sorted(pending)}
                restarted_at = time.time()
                server.kill()
                server.start()
                facts["server_restarted"] = True
                wait_for(
                    lambda: log.all_done(acked),
                    30,
                    "every acknowledged job to be done after restarting beanstalkd",
                    0.1,
                )
                facts["done_after_restart"] = time.time() - restarted_at
            wait_for(lambda: tube_idle(server.pair, TUBE), 30, "the drill tube to be empty", 0.1)
            facts["outcomes"] = Counter(
                f"{e.get('outcome')}: {e.get('reason', '')[:90]}"
                for w in workers
                for e in w.events()
                if e.get("event") == "job" and e.get("outcome") != "deleted"
            )
            facts["workers_alive_end"] = all(w.alive for w in workers)
            facts["full_seconds"] = freed_at - full_at
            facts["at_end"] = _binlog_files(mountpoint)
            ballast.close()

    result.count(log, acked)
    result.metrics.update(facts)
    result.metrics["producer_errors"] = dict(errors_full)
    producer_error = next(iter(errors_full), "none")
    result.recovery = f"puts work {facts['resumed_after']:.2f} s after space returned ({remedy})"
    result.notes = (
        f"{kind} 2 MiB, -s 262144: put got {facts['ballast_refusal']}; producer raised "
        f"`{producer_error}`; workers stayed up: {facts['workers_alive_while_full']}; "
        f"retry while full: {_first_odd(facts['outcomes'])}"
    )
    oom_lost = [
        t for t in facts["outcomes"] if t.startswith("lost: beanstalkd replied OUT_OF_MEMORY")
    ]
    result.metrics["release_oom_logged_lost"] = bool(oom_lost)
    if oom_lost:
        result.known_issues.append(
            "worker: `release` with a delay got OUT_OF_MEMORY (binlog full); the worker logged "
            "the job `lost` ('not reserved by this worker any more (TTR ran out?)') and left it "
            "reserved on its connection"
        )
    if facts.get("stuck"):
        result.known_issues.append(
            "beanstalkd 1.12 orphaned it (not in any queue; delete says NOT_FOUND: "
            f"{'; '.join(facts['stuck'].values())}) until beanstalkd was restarted "
            f"(back and done {facts['done_after_restart']:.2f} s after the restart)"
        )
    result.check(result.lost == 0, f"{result.lost} acknowledged jobs lost")
    twice = set(result.metrics["started_twice"])
    result.check(twice <= {MARK}, f"jobs other than the retried one ran twice: {sorted(twice)}")
    result.check(facts["workers_alive_while_full"], "a worker died while the disk was full")
    result.check(facts["workers_alive_end"], "a worker died")
    result.check(bool(errors_full), "the producer saw no error while the disk was full")
    result.details += [
        (
            f"- filesystem: {kind}, 2 MiB; {facts['ballast_jobs']} ballast jobs of 8 KiB filled it "
            f"(binlog {facts['binlog_bytes_full']} bytes); the next put got "
            f"`{facts['ballast_refusal']}`"
        ),
        f"- replies while full: {facts['replies_while_full']}",
        f"- the producer (beanfleet.Producer.put) raised: {dict(errors_full)}",
        f"- worker outcomes other than `deleted`: {dict(facts['outcomes'])}",
        (
            f"- jobs not done 8 s after space returned: {facts.get('stuck', {})}; beanstalkd "
            f"restarted: {facts.get('server_restarted', False)}"
        ),
        (
            f"- remedy: {remedy}; {facts['ballast_deleted']} ballast jobs deleted (binlog then: "
            f"{facts['after_delete']}); puts accepted again {facts['resumed_after']:.2f} s after "
            f"the fix; binlog at the end: {facts['at_end']}.  Deleting the backlog freed no file: "
            "beanstalkd unlinks a binlog file only when every record in it is dead, and the "
            "oldest files still held live records (the retried job, put before the fill, and the "
            "jobs orphaned by the probes above); moving them (compaction) needs free space."
        ),
    ]
    result.seconds = time.monotonic() - started
    return [result]


def _job_state(address: tuple[str, int], job_id: int) -> str:
    conn = Connection(address)
    try:
        stats = conn.stats_job(job_id)
        return (
            f"job {job_id}: {stats['state']}, time-left {stats['time-left']} s "
            f"(ttr {stats['ttr']}), reserves {stats['reserves']}, timeouts {stats['timeouts']}"
        )
    except Exception as exc:
        return f"job {job_id}: {type(exc).__name__}"
    finally:
        conn.close()


def _binlog_files(directory: Path) -> str:
    files = sorted(directory.glob("binlog.*"))
    return f"{len(files)} files, {binlog_bytes(directory)} bytes"


def _first_odd(outcomes: Counter[str]) -> str:
    for text in outcomes:
        if text.startswith(("lost", "buried")):
            return text
    return "released normally" if outcomes else "no retry seen"


def _put_works(address: tuple[str, int]) -> bool:
    conn = Connection(address)
    try:
        conn.call(b"use drill-probe", b"USING")
        status = _raw_put(conn, b"probe")
        if status == b"INSERTED":
            conn.send([b"watch drill-probe", b"ignore default", b"reserve-with-timeout 0"])
            conn.expect(b"WATCHING")
            conn.expect(b"WATCHING")
            _, values = conn.expect(b"RESERVED")
            conn.read_chunk(int(values[1]))
            conn.call(b"delete " + values[0], b"DELETED")
            return True
        return False
    finally:
        conn.close()


def _probe_commands(address: tuple[str, int]) -> dict[str, str]:
    """What put / release-with-delay / release / bury / delete reply while the disk is full.

    Uses jobs put before the disk filled?  No: a put fails now.  So it reserves ballast jobs
    (they exist) and tries each command on one.
    """
    conn = Connection(address)
    replies: dict[str, str] = {}
    try:
        conn.call(b"use drill-probe", b"USING")
        replies["put"] = _raw_put(conn, b"probe").decode()
        conn.send([b"watch " + BALLAST.encode(), b"ignore default"])
        conn.expect(b"WATCHING")
        conn.expect(b"WATCHING")
        for command in ("release-delay", "release", "bury", "delete"):
            conn.send([b"reserve-with-timeout 0"])
            status, values = conn.expect(b"RESERVED", b"TIMED_OUT")
            if status != b"RESERVED":
                replies[command] = "no job to try"
                continue
            conn.read_chunk(int(values[1]))
            job = values[0]
            line = {
                "release-delay": b"release " + job + b" 0 1",
                "release": b"release " + job + b" 0 0",
                "bury": b"bury " + job + b" 0",
                "delete": b"delete " + job,
            }[command]
            conn.send([line])
            status, _ = conn.read_reply()
            replies[command] = status.decode()
            if status not in (b"RELEASED", b"BURIED", b"DELETED"):
                conn.send([b"release " + job + b" 0 0"])  # hand it back (writes nothing)
                conn.read_reply()
        return replies
    finally:
        conn.close()
