#!/usr/bin/env python3
"""Run beanfleet's failure drills against local beanstalkd servers and report the table.

    python drills/run.py [--size ci|full] [--only NAME[,NAME...]] [--out docs/drills.md]

Each drill starts its own beanstalkd (free port, binlog in a temp dir) and ``beanfleet work``
processes, streams numbered jobs through them while it breaks something, and counts from
the handlers' execution log: jobs sent (acknowledged puts), processed, lost, run twice, time
to recover.  The table replaces the part of ``--out`` between the drills markers (the rest
of the file is prose kept by hand); ``--out -`` prints it only.  Exit status 1 if any drill
failed its checks.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, SIZES, DrillResult

# name -> module, in the order they run and appear in the table.
DRILLS = {
    "server-kill": "server_kill",
    "worker-kill": "worker_kill",
    "restart-storm": "restart_storm",
    "server-down": "server_down",
    "disk-full": "disk_full",
    "retry-storm": "retry_storm",
    "bad-input": "bad_input",
    "security": "security",
    "multi-server": "multi_server",
}

BEGIN = "<!-- drills:table:begin -->"
END = "<!-- drills:table:end -->"


def run_drill(name: str, size: str, workdir: Path) -> list[DrillResult]:
    module = importlib.import_module(DRILLS[name])
    started = time.monotonic()
    try:
        results: list[DrillResult] = module.run(size, workdir / name)
    # A drill that crashes is a failed drill, and the others still run.
    except Exception as exc:
        failed = DrillResult(name, getattr(module, "TITLE", name))
        failed.failures.append(f"drill crashed: {type(exc).__name__}: {exc}")
        failed.details.append("```\n" + traceback.format_exc() + "```")
        results = [failed]
    for result in results:
        if not result.seconds:
            result.seconds = (time.monotonic() - started) / len(results)
    return results


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(results: list[DrillResult], size: str) -> str:
    lines = [
        (
            f"Size `{size}`, measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
            f"by `python drills/run.py --size {size}`."
        ),
        "",
        (
            "| drill | jobs sent | processed | lost | run twice (bound) | time to recover | "
            "result | notes |"
        ),
        "| --- | ---: | ---: | ---: | --- | --- | --- | --- |",
    ]
    for r in results:
        verdict = "pass" if r.ok else "**FAIL**: " + "; ".join(r.failures)
        if r.known_issues:
            verdict += " — known issue: " + "; ".join(r.known_issues)
        lines.append(
            f"| {_cell(r.name)} | {r.sent} | {r.processed} | {r.lost} | "
            f"{r.run_twice} ({_cell(r.run_twice_bound)}) | {_cell(r.recovery)} | "
            f"{_cell(verdict)} | {_cell(r.notes)} |"
        )
    lines.append("")
    for r in results:
        if r.details:
            lines += [
                f"**{r.name}** — {r.title} ({r.seconds:.1f} s)",
                "",
                *r.details,
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def write_doc(path: Path, body: str) -> None:
    block = f"{BEGIN}\n{body}{END}"
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, _, rest = text.partition(BEGIN)
            _, _, tail = rest.partition(END)
            path.write_text(head + block + tail)
            return
        path.write_text(text.rstrip() + "\n\n## Results\n\n" + block + "\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Failure drills\n\n## Results\n\n{block}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=SIZES, default="full")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these drills (repeatable or comma-separated): {', '.join(DRILLS)}",
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "docs" / "drills.md"),
        help="markdown file whose results block is replaced ('-': print only)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    names = [n for item in args.only for n in item.split(",") if n] or list(DRILLS)
    unknown = [n for n in names if n not in DRILLS]
    if unknown:
        parser.error(f"unknown drill(s) {', '.join(unknown)}; known: {', '.join(DRILLS)}")

    # SIGTERM (a CI timeout, `timeout`) unwinds like Ctrl-C, so every drill's cleanup runs:
    # servers and workers killed, small filesystems unmounted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="beanfleet-drills-"))
    results: list[DrillResult] = []
    try:
        for name in names:
            print(f"drill {name} ({args.size}) ...", file=sys.stderr, flush=True)
            for r in run_drill(name, args.size, workdir):
                results.append(r)
                status = "ok" if r.ok else "FAILED: " + "; ".join(r.failures)
                if r.known_issues:
                    status += " (known issues: " + "; ".join(r.known_issues) + ")"
                print(
                    f"  {r.name}: sent {r.sent} processed {r.processed} lost {r.lost} "
                    f"twice {r.run_twice} recover {r.recovery} [{r.seconds:.1f}s] {status}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)

    body = table(results, args.size)
    print(body)
    if args.out != "-":
        write_doc(Path(args.out), body)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
