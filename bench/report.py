"""The outputs of a run: a text table on stdout, ``bench.md`` and ``bench.png``."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from bench_common import Figure, Row

TABLE_START = "<!-- bench-table:start -->"
TABLE_END = "<!-- bench-table:end -->"


def fmt_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ratio(row: Row) -> str:
    return "" if row.ratio is None else f"{row.ratio:.2f}× {row.ratio_to}"


def goal_status(row: Row) -> str:
    """'≥ 1.8× greenstalk: met' from a goal like '≥ 1.8× greenstalk' and the row's ratio."""
    if not row.goal:
        return ""
    want = float(row.goal.split("≥", 1)[1].split("×", 1)[0])
    ok = row.ratio is not None and row.ratio >= want
    return f"{row.goal}: **{'met' if ok else 'missed'}**"


def fmt_extra(row: Row) -> str:
    parts = []
    for k, v in row.extra.items():
        if k == "level":
            continue
        parts.append(f"{k} {fmt_value(v, '')}")
    return ", ".join(parts)


def text_table(figures: list[Figure]) -> str:
    lines = []
    for fig in figures:
        lines.append(f"[{fig.number}] {fig.title}  ({fig.seconds:.1f} s)")
        for row in fig.rows:
            ratio = fmt_ratio(row)
            goal = goal_status(row).replace("**", "")
            lines.append(
                f"    {row.label[:62]:<62} {fmt_value(row.value, row.unit):>10} {row.unit:<6}"
                f" {ratio:<28} {goal}"
            )
    return "\n".join(lines)


def markdown(
    figures: list[Figure],
    machine: dict[str, str],
    size: str,
    total_seconds: float,
    png_name: str,
    background: str,
) -> str:
    out = [
        "# beanfleet benchmarks",
        "",
        (
            f"Written by `python bench/run.py --size {size}` (`make bench` runs `--size full`); "
            "do not edit by hand, run it again. Every figure and its baseline ran in the same "
            "run, against a beanstalkd the run started itself (binlog on, in a temp dir, unless "
            "the figure says otherwise). Benchmarks, not tests: nothing here passes or fails, "
            "except the goals stated for figures 1 and 2."
        ),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    out += [f"| {k} | {v} |" for k, v in machine.items()]
    out += [
        f"| Background load | {background} |",
        f"| Run | size `{size}`, {total_seconds:.0f} s |",
        "",
        "## Results",
        "",
        f"![the figures as charts]({png_name})",
        "",
        TABLE_START,
        "| # | Measurement | Value | Unit | Ratio | Goal | Details |",
        "|---|---|---:|---|---|---|---|",
    ]
    for fig in figures:
        for row in fig.rows:
            out.append(
                f"| {fig.number} | {row.label} | {fmt_value(row.value, row.unit)} | {row.unit} | "
                f"{fmt_ratio(row)} | {goal_status(row)} | {fmt_extra(row)} |"
            )
    out += [TABLE_END, ""]
    goals = [(fig, row) for fig in figures for row in fig.rows if row.goal]
    if goals:
        out += ["## Goals", ""]
        for fig, row in goals:
            ratio = "not measured" if row.ratio is None else f"{row.ratio:.2f}×"
            out.append(f"- Figure {fig.number}, {row.label}: {ratio}; {goal_status(row)}.")
        out.append("")
    out += ["## What each figure measures and what limits it", ""]
    for fig in figures:
        out += [f"### {fig.number}. {fig.title}", ""]
        out += [f"- {note}" for note in fig.notes]
        out.append("")
        for table in fig.tables:
            out += [*table, ""]
    return "\n".join(out)


def merge(previous: str, partial: str, numbers: set[int]) -> str:
    """``partial`` (a run of figures ``numbers`` only) with the other figures' rows, goals
    and sections kept from ``previous`` (a bench.md of an earlier run), which it names."""
    if TABLE_START not in previous:
        return partial
    when = previous.split("| Date | ", 1)[1].split(" |", 1)[0] if "| Date | " in previous else "?"

    def number(line: str) -> int:
        return int(line.strip("|").split("|", 1)[0])

    head, rest = partial.split(TABLE_START, 1)
    table, tail = rest.split(TABLE_END, 1)
    old_table = previous.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    old_rows = [ln for ln in old_table.strip().splitlines()[2:] if number(ln) not in numbers]
    new_lines = table.strip().splitlines()
    rows = sorted(new_lines[2:] + old_rows, key=number)  # stable: each figure's order kept
    # Which run each kept figure comes from: the previous file's own "Kept" rows, else its date.
    dates = {}
    for line in previous.splitlines():
        if line.startswith("| Kept | from the run of "):
            date, _, figs = line.removeprefix("| Kept | from the run of ").partition(": figures ")
            for f in figs.split(" (", 1)[0].rstrip(" |").split(", "):
                dates[int(f)] = date
    by_date: dict[str, list[int]] = {}
    for f in sorted({number(r) for r in old_rows}):
        by_date.setdefault(dates.get(f, when), []).append(f)
    kept = "".join(
        f"| Kept | from the run of {date}: figures {', '.join(map(str, figs))} |\n"
        for date, figs in by_date.items()
    )
    head = "".join(ln + "\n" for ln in head.splitlines() if not ln.startswith("| Kept |"))
    head = head.replace("| Run | ", kept + "| Run | ", 1)

    def sections(text: str) -> dict[int, str]:
        body = text.split("## What each figure measures and what limits it", 1)[-1]
        out = {}
        for chunk in body.split("\n### ")[1:]:
            out[int(chunk.split(".", 1)[0])] = "### " + chunk.rstrip() + "\n"
        return out

    def goals(text: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for line in text.splitlines():
            if line.startswith("- Figure ") and ": " in line:
                out.setdefault(int(line.split()[2].rstrip(",")), []).append(line)
        return out

    secs = {k: v for k, v in sections(previous).items() if k not in numbers}
    secs.update(sections(tail))
    goal = {k: v for k, v in goals(previous).items() if k not in numbers}
    goal.update(goals(tail))
    out = [head + TABLE_START, *new_lines[:2], *rows, TABLE_END, ""]
    if goal:
        out += ["## Goals", ""] + [g for k in sorted(goal) for g in goal[k]] + [""]
    out += ["## What each figure measures and what limits it", ""]
    out += [secs[k] for k in sorted(secs)]
    return "\n".join(out)


def parse_table(text: str) -> list[dict[str, str]]:
    """The results table of a bench.md, one dict per row (used by the smoke test)."""
    body = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip().splitlines()
    header = [c.strip() for c in body[0].strip("|").split("|")]
    rows = []
    for line in body[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


# ---------------------------------------------------------------------------------------------
# The picture


def _short(label: str, width: int = 28) -> str:
    label = label.split(" (", maxsplit=1)[0]
    return label if len(label) <= width else label[: width - 1] + "…"


def plot(figures: list[Figure], path: Path, title: str, machine: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    # minor log ticks: label only 2× and 5× a power of ten
    some = FuncFormatter(lambda v, _pos: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")
    thousands = FuncFormatter(lambda v, _pos: f"{v / 1000:g}k" if v else "0")

    by_number = {f.number: f for f in figures}
    fig, axes = plt.subplots(4, 3, figsize=(18, 20))
    fig.suptitle(title, fontsize=14)
    flat = list(axes.flat)
    for ax in flat:
        ax.set_visible(False)

    def panel(index: int, f: Figure) -> Any:
        """The axes (matplotlib Axes) of figure ``f``'s chart, shown and titled."""
        ax = flat[index]
        ax.set_visible(True)
        ax.set_title(f"{f.number}. {f.title}", fontsize=10)
        return ax

    def bars(ax: Any, rows: list[Row], unit: str) -> None:
        names = [_short(r.label) for r in rows]
        values = [r.value for r in rows]
        ys = range(len(rows))
        colors = ["#2a6fbb" if "beanfleet" in r.label or r.goal else "#9aa5b1" for r in rows]
        ax.barh(list(ys), values, color=colors)
        ax.set_yticks(list(ys), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(unit)
        for y, r in zip(ys, rows, strict=True):
            text = f" {fmt_value(r.value, r.unit)}"
            if r.ratio is not None:
                text += f"  ({r.ratio:.2f}×)"
            ax.text(r.value, y, text, va="center", fontsize=8)
        ax.set_xlim(0, max(values) * 1.45 if values else 1)
        if unit.startswith("jobs/s"):
            ax.xaxis.set_major_formatter(thousands)

    def spread_bars(
        ax: Any, groups: list[str], series: dict[str, list[float]], ylabel: str
    ) -> None:
        """p50, p99 and max side by side per group on a log scale (figures 3 and 6)."""
        xs = range(len(groups))
        width = 0.27
        for i, (key, vals) in enumerate(series.items()):
            ax.bar([x + (i - 1) * width for x in xs], vals, width, label=key)
        ax.set_xticks(list(xs), groups)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(some)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)

    spread = ("p50", "p99", "max")
    if 1 in by_number:
        f = by_number[1]
        bars(panel(0, f), f.rows, "jobs/s (one process)")
    if 2 in by_number:
        f = by_number[2]
        bars(panel(1, f), f.rows, "jobs/s")
    if 3 in by_number:
        f = by_number[3]
        levels = [r for r in f.rows if "p50" in r.label]
        spread_bars(
            panel(2, f),
            [f"{r.extra['level']:.0%} load" for r in levels],
            {k: [r.value if k == "p50" else r.extra[f"{k} ms"] for r in levels] for k in spread},
            "ms, put → handler start (log)",
        )
    if 4 in by_number:
        f = by_number[4]
        ax = panel(3, f)
        counts = [int(r.label.split()[0]) for r in f.rows]
        ax.plot(counts, [r.value for r in f.rows], "o-", color="#2a6fbb", label="jobs/s")
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel("worker processes")
        ax.set_ylabel("jobs/s")
        ax.set_ylim(bottom=0)
        ax2 = ax.twinx()
        for key, style, color, label in (
            ("beanstalkd CPU %", "s--", "#c0504d", "beanstalkd CPU %"),
            ("total CPU %", "^--", "#9bbb59", "total CPU % (server+workers)"),
            ("other processes CPU %", "x:", "#7f7f7f", "other processes CPU %"),
        ):
            ax2.plot(counts, [r.extra[key] for r in f.rows], style, color=color, label=label)
        ax2.set_ylabel("CPU % (100 = one core)")
        ax2.set_ylim(0, 260)
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(
            lines,
            [str(ln.get_label()) for ln in lines],
            fontsize=7,
            loc="upper left",
            ncol=2,
        )
    if 5 in by_number:
        f = by_number[5]
        bars(panel(4, f), f.rows, "jobs/s, put+work")
    if 6 in by_number:
        f = by_number[6]
        modes = sorted({r.label.split(":")[0] for r in f.rows}, key=lambda m: m.startswith("s"))
        lateness = {r.label: r.value for r in f.rows}
        spread_bars(
            panel(5, f),
            modes,
            {k: [lateness[f"{m}: lateness {k}"] for m in modes] for k in spread},
            "ms after due time (log)",
        )
    if 7 in by_number:
        f = by_number[7]
        ax = panel(6, f)
        for name, series in f.plot.items():
            ax.plot([x for x, _ in series], [y for _, y in series], "o-", label=name)
        ax.set_xlabel("jobs done (0 = idle)")
        ax.set_ylabel("VmRSS MiB")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    if 8 in by_number:
        f = by_number[8]
        bars(panel(7, f), f.rows, "jobs/s")
    if 9 in by_number:
        f = by_number[9]
        ax = panel(8, f)
        for name, series in f.plot.items():
            counts = [int(x) for x, _ in series]
            ax.plot(counts, [max(y, 0.01) for _, y in series], "o-", label=f"{name}: p50")
        p90 = {}
        for r in f.rows:
            name = r.label.split(": ")[0] if ": " in r.label else "new"
            p90.setdefault(name, []).append((int(r.label.split()[-2]), r.extra["p90 ms"]))
        for name, series in p90.items():
            ax.plot(
                [x for x, _ in series],
                [max(y, 0.01) for _, y in series],
                "x:",
                label=f"{name}: p90",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.set_xlabel("servers the idle worker waits on")
        ax.set_ylabel("ms, put → handler start (log)")
        ax.axhline(50, color="#c0504d", linestyle="--", linewidth=1, label="goal 50 ms")
        ax.legend(fontsize=8)
    if 10 in by_number:
        f = by_number[10]
        bars(panel(9, f), [r for r in f.rows if r.unit == "µs"], "µs of worker CPU per job")
    ax = flat[11]
    ax.set_visible(True)
    ax.axis("off")
    lines = ["Goals"]
    for f in figures:
        for r in f.rows:
            if r.goal:
                status = goal_status(r).replace("**", "")
                lines.append(f"  fig {f.number}: {r.ratio or 0:.2f}x; {status}")
    lines += ["", "Machine"]
    for m in machine:
        lines += textwrap.wrap(m, 62, subsequent_indent="    ")
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=80)
    plt.close(fig)
