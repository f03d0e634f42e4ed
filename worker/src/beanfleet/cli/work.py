"""``beanfleet work``: run a worker for one or more tubes."""

from __future__ import annotations

import os
import sys

import click

from beanfleet.bounds import MAX_COUNT, MAX_MEGABYTES, MAX_RETRIES, MAX_SECONDS
from beanfleet.cli.options import (
    Count,
    Number,
    choice_option,
    dir_option,
    number_option,
    options,
    server_option,
)
from beanfleet.errors import ConfigError
from beanfleet.metrics.worker import METRICS_DIR_ENV, POOL_ENV, WorkerMetrics, off_message
from beanfleet.work.crashguard import STATE_DIR_ENV, default_state_dir
from beanfleet.work.events import Observer
from beanfleet.work.handlers import Handler, load_handlers
from beanfleet.work.joblog import LOG_FORMATS, JobLog, LogFormat
from beanfleet.work.loop import Worker
from beanfleet.work.outcome import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_MAX_RETRIES,
    RetryPolicy,
)
from beanfleet.work.recycle import RecycleLimits


def _handlers(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> dict[str, Handler]:
    # Handler modules are found like `python -m` finds them: the working directory counts
    # (appended, so it cannot shadow installed packages).
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        return load_handlers(list(value))
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


# The worker's number options: flag, type (the range), default, help, metavar.
_NUMBERS: tuple[tuple[str, Count | Number, float | None, str, str | None], ...] = (
    (
        "--max-retries",
        Count("max-retries", low=0, high=MAX_RETRIES),
        DEFAULT_MAX_RETRIES,
        "Retries after the first attempt before a failing job is buried.",
        None,
    ),
    (
        "--backoff-base",
        Number("backoff base", low=0, high=MAX_SECONDS),
        DEFAULT_BACKOFF_BASE,
        "Delay before the first retry; doubles per attempt (with jitter).",
        "SECONDS",
    ),
    (
        "--backoff-cap",
        Number("backoff cap", low=0, high=MAX_SECONDS),
        DEFAULT_BACKOFF_CAP,
        "Longest retry delay.",
        "SECONDS",
    ),
    (
        "--timeout",
        Number("timeout", low=0, low_open=True, high=MAX_SECONDS),
        None,
        "Stop a handler running longer than this; counts as a failed attempt.",
        "SECONDS",
    ),
    (
        "--max-jobs",
        Count("max-jobs", low=1, high=MAX_COUNT),
        None,
        "Exit 0 after N jobs.",
        None,
    ),
    (
        "--max-time",
        Number("max-time", low=0, low_open=True, high=MAX_SECONDS),
        None,
        "Exit 0 after this long.",
        "SECONDS",
    ),
    (
        "--max-memory",
        Number("max-memory", low=0, low_open=True, high=MAX_MEGABYTES),
        None,
        "Exit 0 once the resident memory reaches this many MB.",
        "MB",
    ),
)


@click.command("work")
@server_option
@click.option(
    "--tube",
    "handlers",
    multiple=True,
    required=True,
    metavar="TUBE=MODULE:FUNCTION",
    callback=_handlers,
    help="Watch TUBE; run MODULE:FUNCTION(data, job) for each job (repeatable).",
)
@options(*(number_option(*row[:4], metavar=row[4]) for row in _NUMBERS))
@click.option(
    "--prefetch/--no-prefetch",
    default=False,
    show_default=True,
    help="Reserve the next job while a handler runs (faster for short jobs; the worker "
    "then holds one unstarted job, given back if the current one runs over 0.5 s).",
)
@dir_option(
    "--state-dir",
    envvar=STATE_DIR_ENV,
    help="Where workers on this host record the jobs they are running, so a job that kills "
    "its worker is caught without a round trip per job (shared by all workers of the host; "
    "default: $STATE_DIRECTORY from systemd, else the working directory).",
)
@choice_option(
    "--log-format",
    LOG_FORMATS,
    "text",
    "One line per job outcome on stderr: key=value text, or JSON objects.",
)
@dir_option(
    "--metrics-dir",
    envvar=METRICS_DIR_ENV,
    help="Write Prometheus metrics (jobs by outcome, durations, ...) into DIR, shared by the "
    "workers of the host and served by `beanfleet metrics-endpoint --dir DIR` (default: off).",
)
@click.option(
    "--pool",
    default=None,
    envvar=POOL_ENV,
    metavar="NAME",
    help="The pool label of the metrics [default: the tubes, joined with ',']",
)
def work(
    *,  # click passes options by name
    servers: list[str],
    handlers: dict[str, Handler],
    max_retries: int,
    backoff_base: float,
    backoff_cap: float,
    timeout: float | None,
    max_jobs: int | None,
    max_time: float | None,
    max_memory: float | None,
    prefetch: bool,
    state_dir: str | None,
    log_format: LogFormat,
    metrics_dir: str | None,
    pool: str | None,
) -> None:
    """Run jobs from beanstalkd tubes through Python handlers.

    A handler's success deletes its job; an exception retries it after an exponential
    backoff until --max-retries, then buries it.  SIGTERM/SIGINT/SIGHUP: finish the current
    job and exit (under systemd or supervisor: a graceful restart); a second one releases the
    running job and exits at once.  While beanstalkd is
    unreachable the worker keeps reconnecting.  With several servers one process serves
    them all at once (see README, "Several queue hosts"); job ids in its log and in the
    handler's job.id are SERVER/ID.
    """
    log = JobLog(log_format)
    observers: list[Observer] = []
    if metrics_dir:
        try:
            observers.append(WorkerMetrics(metrics_dir, pool or ",".join(handlers)))
        except OSError as exc:
            # Metrics must never hurt jobs: a directory that cannot be written (full disk,
            # no permission) is said once, and the worker runs without metrics.
            log.event("metrics-off", off_message(metrics_dir, exc), level="error")
    worker = Worker(
        servers,
        handlers,
        policy=RetryPolicy(max_retries, backoff_base, backoff_cap),
        timeout=timeout,
        limits=RecycleLimits(max_jobs, max_time, max_memory),
        log=log,
        prefetch=prefetch,
        state_dir=state_dir or default_state_dir(),
        observers=observers,
    )
    worker.run()


COMMANDS: list[click.Command] = [work]
