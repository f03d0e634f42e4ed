"""Drill 8 (local part): nothing in a job body can choose the code that runs.

The worker runs only the handlers its command line names (``--tube TUBE=MODULE:FUNCTION``);
a body is decoded with ``json.loads`` (no pickle, no object hooks) and handed to that
handler as plain data.  Hostile bodies that name modules, functions, shell commands or
pickled objects are put on the worker's tube; each must reach the configured handler as
data, and none of the code they name may run (a marker file must not appear).
"""

from __future__ import annotations

import base64
import json
import pickle
import time
from pathlib import Path

import greenstalk
from harness import DrillResult, stage, tube_idle, wait_for

NAME = "security"
TUBE = "drill-sec"


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("touch MARKER",))


def hostile_bodies(marker: Path) -> dict[str, bytes]:
    cmd = f"touch {marker}"
    return {
        "module/function/args": json.dumps(
            {"module": "os", "function": "system", "args": [cmd]}
        ).encode(),
        "handler spec in body": json.dumps(
            {"handler": "os:system", "tube": "x=os:system"}
        ).encode(),
        "spec as the whole body": json.dumps(f"{TUBE}=os:system").encode(),
        "__class__/__reduce__ keys": json.dumps(
            {"__class__": "os.system", "__reduce__": ["os.system", [cmd]]}
        ).encode(),
        "pickle (raw)": pickle.dumps(_Evil()).replace(b"MARKER", str(marker).encode()),
        "pickle (base64 in JSON)": json.dumps(
            {"pickle": base64.b64encode(pickle.dumps(_Evil())).decode()}
        ).encode(),
        "python expression": json.dumps(f"__import__('os').system('{cmd}')").encode(),
    }


def run(size: str, workdir: Path) -> list[DrillResult]:
    started = time.monotonic()
    marker = workdir / "MARKER"
    result = DrillResult(NAME, "job bodies cannot choose the code", run_twice_bound="0")
    bodies = hostile_bodies(marker)
    json_ok = {name for name, body in bodies.items() if _is_json(body)}
    with stage(workdir, TUBE) as (log, server, fleet):
        worker = fleet.start("w0")
        client = greenstalk.Client(server.pair, encoding=None, use=TUBE)
        for body in bodies.values():
            client.put(body)
        client.put(b'{"seq": 0}')
        client.close()
        wait_for(
            lambda: log.all_done({0}) and tube_idle(server.pair, TUBE),
            20,
            "every hostile job to be handled or buried",
            0.05,
        )
        stats = log.stats()
        handled_as_data = stats.unnumbered.get("done", 0)
        buried = sum(
            1 for e in worker.events() if e.get("event") == "job" and e.get("outcome") == "buried"
        )
        alive = worker.alive
    result.sent = 1
    result.processed = 1 if 0 in stats.done_seqs else 0
    result.lost = 1 - result.processed
    result.metrics.update(
        handled_as_data=handled_as_data,
        buried=buried,
        marker_exists=marker.exists(),
        json_bodies=len(json_ok),
        other_bodies=len(bodies) - len(json_ok),
    )
    result.check(not marker.exists(), "a hostile body ran code: the marker file exists")
    result.check(
        handled_as_data == len(json_ok),
        f"{handled_as_data} hostile JSON bodies reached the handler, expected {len(json_ok)}",
    )
    result.check(
        buried == len(bodies) - len(json_ok),
        f"{buried} non-JSON bodies buried, expected {len(bodies) - len(json_ok)}",
    )
    result.check(alive, "the worker died")
    result.recovery = "n/a"
    result.notes = (
        f"{len(json_ok)} hostile JSON bodies (module/function names, a handler spec, "
        f"`__reduce__` keys, a Python expression) reached the configured handler "
        f"drill_handlers:record as plain data; {buried} pickle body buried as not JSON; "
        f"marker file created: {marker.exists()}"
    )
    result.details.append(
        "- bodies tried: "
        + ", ".join(f"`{n}`" for n in bodies)
        + ". Code comes only from `--tube TUBE=MODULE:FUNCTION` on the worker's command "
        "line, parsed once at start-up; a job's tube only selects among those handlers, and "
        "the worker ignores tubes it was not configured for."
    )
    result.seconds = time.monotonic() - started
    return [result]


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True
