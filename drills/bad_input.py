"""Drill 7: bad input -- poison bodies, oversized bodies, invalid tube names, malformed
handler specs, an invalid fleet description.  Each must get a clear error, the worker must
stay up, and no other job may be lost.  (Random bodies: tests/drills/test_bad_input.py runs
the same path under hypothesis.)
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import greenstalk
from beanfleet.errors import BeanfleetError, ConfigError, JobTooBig
from beanfleet.produce.producer import Producer
from harness import DrillResult, beanfleet_argv, drill_env, stage, tube_counts, wait_for

NAME = "bad-input"
TUBE = "drill-bad"
MAX_JOB = 131072  # big enough for the 100000-deep nesting to reach the worker

# Bodies no handler should ever see; each must be buried, the worker must carry on.
POISON: dict[str, bytes] = {
    "invalid UTF-8": b"\xff\xfe\x00garbage",
    "not JSON": b"hello world",
    "empty body": b"",
    "truncated JSON": b'{"seq": 1',
    "trailing garbage": b'{"seq": 1} x',
    "UTF-8 BOM": b'\xef\xbb\xbf{"seq": 1}',
    "lone surrogate bytes": b'"\xed\xa0\x80"',
    "20000 digits": b"1" * 20000,
    "NUL bytes": b"\x00\x00\x00",
}


# Valid-looking JSON that Python's json module cannot decode without recursing 100000 deep:
# json.loads raises RecursionError, which is not a ValueError.
DEEP = b"[" * 100000


def poison_bodies(size: str) -> dict[str, bytes]:
    return dict(POISON)


def run_cli(args: list[str], cwd: Path, timeout: float = 30) -> tuple[int, list[str]]:
    proc = subprocess.run(
        [*beanfleet_argv(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=drill_env(None),
        cwd=str(cwd),
        check=False,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, lines


def run(size: str, workdir: Path) -> list[DrillResult]:
    started = time.monotonic()
    result = DrillResult(NAME, "bad input", run_twice_bound="0")
    facts: dict[str, Any] = {}
    acked: set[int] = set()
    with stage(workdir, TUBE, max_job_size=MAX_JOB) as (log, server, fleet):
        worker = fleet.start("w0")
        raw = greenstalk.Client(server.pair, encoding=None, use=TUBE)
        # Poison jobs interleaved with good ones: every good one must run once.
        seq = 0
        poison_ids: dict[int, str] = {}
        too_big_for_client: list[str] = []
        for name, body in poison_bodies(size).items():
            try:
                poison_ids[raw.put(body, ttr=30)] = name
            except greenstalk.JobTooBigError:
                too_big_for_client.append(name)  # over -z: refused before any worker
            raw.put(b'{"seq": %d}' % seq)
            acked.add(seq)
            seq += 1
        raw.close()
        wait_for(lambda: log.all_done(acked), 30, "every good job to be done", 0.05)
        wait_for(
            lambda: tube_counts(server.pair, TUBE)["buried"] == len(poison_ids),
            15,
            "every poison job to be buried",
            0.05,
        )
        facts["poison_buried"] = tube_counts(server.pair, TUBE)["buried"]
        facts["worker_alive_after_poison"] = worker.alive
        facts["bury_reasons"] = {
            poison_ids.get(e.get("job"), str(e.get("job"))): e.get("reason", "")[:80]
            for e in worker.events()
            if e.get("event") == "job" and e.get("outcome") == "buried"
        }
        facts["refused_by_server"] = too_big_for_client

        # The deep-nesting body, alone, with a good job behind it.
        raw = greenstalk.Client(server.pair, encoding=None, use=TUBE)
        deep_id = raw.put(DEEP, ttr=30)
        raw.put(b'{"seq": %d}' % seq)
        acked.add(seq)
        seq += 1
        raw.close()
        buried_before = facts["poison_buried"]
        wait_for(
            lambda: not worker.alive or tube_counts(server.pair, TUBE)["buried"] > buried_before,
            15,
            "the deep-nesting job to be buried (or the worker to die)",
            0.05,
        )
        facts["deep_crashed_worker"] = not worker.alive
        if not worker.alive:
            worker.wait(5)
            facts["deep_exit"] = worker.returncode
            facts["deep_error"] = next(
                (
                    line
                    for line in reversed(worker.log_path.read_text().splitlines())
                    if "Error" in line
                ),
                "",
            )
            # What an operator must do before any worker can run again: take the poison
            # job out of the way by hand (otherwise every worker that reserves it dies).
            _bury_by_hand(server.pair, deep_id)
            worker = fleet.start("w1")
        wait_for(
            lambda: log.all_done(acked),
            30,
            "the good job behind the deep body",
            0.05,
        )

        # Oversized bodies through beanfleet's producer: a clear error, nothing else lost.
        with Producer(server.address) as producer:
            try:
                producer.put(TUBE, {"seq": -1, "pad": "x" * (MAX_JOB * 2)})
                facts["too_big"] = "accepted (!)"
            except JobTooBig as exc:
                facts["too_big"] = f"{type(exc).__name__}: {exc}"
            try:
                producer.put_many(TUBE, [{"seq": seq}, {"pad": "x" * (MAX_JOB * 2)}])
                facts["too_big_bulk"] = "accepted (!)"
            except JobTooBig as exc:
                facts["too_big_bulk"] = f"{type(exc).__name__}: {exc}"
            try:
                producer.put("-bad tube", {"seq": -2})
                facts["bad_tube"] = "accepted (!)"
            except ConfigError as exc:
                facts["bad_tube"] = f"{type(exc).__name__}: {exc}"
            try:
                producer.put(TUBE, {"seq": -3, "x": float("nan")})
                facts["nan_body"] = "accepted (!)"
            except BeanfleetError as exc:
                facts["nan_body"] = f"{type(exc).__name__}: {exc}"
            for _ in range(5):  # good jobs after the refusals
                producer.put(TUBE, {"seq": seq})
                acked.add(seq)
                seq += 1
        wait_for(
            lambda: log.all_done(acked),
            30,
            "the good jobs after the refusals",
            0.05,
        )
        facts["worker_alive_end"] = worker.alive

    # The command line: one clear line and exit 2 for each bad setting.
    cli: dict[str, tuple[int, list[str]]] = {}
    for label, args in {
        "--tube bad": ["work", "--server", server.address, "--tube", "bad"],
        "--tube -bad=drill_handlers:record": [
            "work",
            "--server",
            server.address,
            "--tube",
            "-bad=drill_handlers:record",
        ],
        "--tube t=nosuchmodule:f": [
            "work",
            "--server",
            server.address,
            "--tube",
            "t=nosuchmodule:f",
        ],
        "--tube t=drill_handlers:nope": [
            "work",
            "--server",
            server.address,
            "--tube",
            "t=drill_handlers:nope",
        ],
        "--server nope": [
            "work",
            "--server",
            "nope",
            "--tube",
            "t=drill_handlers:record",
        ],
    }.items():
        cli[label] = run_cli(args, workdir)
    facts["cli"] = {
        k: {"exit": v[0], "lines": len(v[1]), "last": v[1][-1] if v[1] else ""}
        for k, v in cli.items()
    }
    facts["render"] = _render_check(workdir)

    result.count(log, acked)
    result.metrics.update(facts)
    bad_exit = {k: v for k, v in facts["cli"].items() if v["exit"] != 2}
    multi_line = {k: v["lines"] for k, v in facts["cli"].items() if v["lines"] != 1}
    result.check(facts["worker_alive_after_poison"], "the worker died on a poison body")
    if facts["deep_crashed_worker"]:
        result.known_issues.append(
            f"worker: a body of 100000 '[' kills the worker (exit {facts['deep_exit']}: "
            f"{facts['deep_error'][:70]}); the job returns to ready and kills the next worker "
            "too, so it had to be buried by hand"
        )
    result.check(facts["worker_alive_end"], "the worker died")
    result.check(facts["poison_buried"] == len(poison_ids), "not every poison job was buried")
    result.check(result.lost == 0, f"{result.lost} good jobs lost")
    result.check(result.run_twice == 0, f"{result.run_twice} jobs ran twice")
    result.check(facts["too_big"].startswith("JobTooBig"), f"oversized put: {facts['too_big']}")
    result.check(facts["bad_tube"].startswith("ConfigError"), f"bad tube: {facts['bad_tube']}")
    result.check(not bad_exit, f"CLI exit status not 2: {bad_exit}")
    if multi_line:
        result.known_issues.append(
            f"CLI usage errors print {sorted(set(multi_line.values()))} lines (click's usage "
            "block + 'Error: ...'), not one line"
        )
    result.recovery = (
        "a new worker, after the deep body was buried by hand"
        if facts["deep_crashed_worker"]
        else "the worker never stopped"
    )
    result.notes = (
        f"{len(poison_ids)} poison bodies buried with a reason, {len(acked)} good jobs all "
        f"done once; oversized: `{facts['too_big'][:70]}`; bad tube: `{facts['bad_tube'][:60]}`"
        f"; CLI exit codes {sorted({v['exit'] for v in facts['cli'].values()})}; "
        f"render: {facts['render'][:80]}"
    )
    result.details += [
        f"- poison bodies and the worker's bury reasons: {facts['bury_reasons']}",
        (
            f"- refused by the server before any worker (over -z {MAX_JOB}): "
            f"{facts['refused_by_server']}"
        ),
        (
            f"- Producer.put oversized: `{facts['too_big']}`; put_many with one oversized item: "
            f"`{facts['too_big_bulk']}`; NaN in data: `{facts['nan_body']}`; tube '-bad tube': "
            f"`{facts['bad_tube']}`"
        ),
        *(
            f"- `beanfleet {k}`: exit {v['exit']}, {v['lines']} stderr line(s), last: `{v['last']}`"
            for k, v in facts["cli"].items()
        ),
        f"- `beanfleet render` with a bad FLEET.yml: {facts['render']}",
    ]
    result.seconds = time.monotonic() - started
    return [result]


def _bury_by_hand(address: tuple[str, int], job_id: int) -> None:
    with greenstalk.Client(address, encoding=None, watch=TUBE) as client:
        for _ in range(50):
            job = client.reserve(timeout=5)
            if job.id == job_id:
                client.bury(job)
                return
            client.release(job)
    raise RuntimeError(f"could not reserve poison job {job_id} to bury it")


def _render_check(workdir: Path) -> str:
    """`beanfleet render` of an invalid fleet description: one line, nothing written."""
    try:
        import beanfleet.fleet  # noqa: F401
    except ImportError:
        return "not checked: beanfleet.fleet does not exist yet"
    fleet_dir = workdir / "fleet"
    fleet_dir.mkdir(exist_ok=True)
    bad = fleet_dir / "FLEET.yml"
    bad.write_text("workers:\n  - tube: -bad\n    handler: nope\n    count: -3\n")
    out = fleet_dir / "out"
    code, lines = run_cli(["render", str(bad), "--out", str(out)], fleet_dir)
    if code == 2 and "no such option" in " ".join(lines).lower():
        code, lines = run_cli(["render", str(bad)], fleet_dir)
    if any("no such command" in line.lower() for line in lines):
        return "not checked: `beanfleet render` is not there yet"
    written = sorted(p.name for p in fleet_dir.rglob("*") if p != bad and p.is_file())
    return (
        f"exit {code}, {len(lines)} line(s): {lines[-1] if lines else ''!r}; files written: "
        f"{written or 'none'}"
    )
