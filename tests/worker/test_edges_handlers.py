"""Issue 18 edges of the worker's handlers and signals, on a real beanstalkd and real
``beanfleet work`` processes: handlers that would "succeed" without running (item 1), SIGHUP
(item 6), and NaN/Infinity bodies (item 15).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import handlers_for_edges
import pytest
from beanfleet.errors import ConfigError
from beanfleet.work.loop import Worker
from worker_support import Queue, WorkerProcess, graceful_stop, read_records, started, wait_for

pytestmark = pytest.mark.timeout(60)

SLOW = "work=handlers_for_tests:slow"
RECORD = "work=handlers_for_tests:record"


# -- item 1: async def and generator handlers ------------------------------------------------


@pytest.mark.parametrize(
    ("function", "what"),
    [
        ("async_handler", "async function"),
        ("async_partial", "async function"),
        ("async_callable", "async function"),
        ("generator_handler", "generator function"),
        ("async_generator_handler", "async generator function"),
    ],
)
def test_a_handler_that_would_not_run_is_refused_at_start(
    queue: Queue,
    spawn_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    function: str,
    what: str,
) -> None:
    """Issue 18 item 1: an ``async def`` or generator handler is refused when the worker
    starts (one line naming the tube and handler, with the hint to wrap it; exit 2), and the
    waiting job is left untouched instead of deleted unrun."""
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", f"work=handlers_for_edges:{function}"
    )
    assert worker.wait_exit(15) == 2
    lines = worker.lines()
    assert len(lines) == 1, lines  # one line, no traceback
    [line] = lines
    assert line.startswith("beanfleet: error: ")
    assert f"handlers_for_edges:{function} for tube 'work'" in line
    assert what in line and "its jobs would be deleted undone" in line
    hint = "list(handle(data, job))" if what == "generator function" else "asyncio.run("
    assert hint in line
    stats = queue.stats(job_id)
    assert stats is not None and stats["state"] == "ready" and stats["reserves"] == 0
    assert read_records(out) == []


def test_the_worker_api_refuses_an_async_handler_too(queue: Queue) -> None:
    """Issue 18 item 1: ``Worker`` (the API ``beanfleet work`` builds on, one server or several)
    refuses an async handler when it is made, with the same one-line ConfigError."""
    with pytest.raises(ConfigError, match=r"tube 'work' is an async function: .*asyncio\.run"):
        Worker(queue.server.address, {"work": handlers_for_edges.async_handler}, state_dir=None)
    with pytest.raises(ConfigError, match="is a generator function"):
        Worker(
            [queue.server.address, "127.0.0.1:1"],  # never connected: refused when made
            {"work": handlers_for_edges.generator_handler},
            state_dir=None,
        )


@pytest.mark.parametrize(
    ("function", "returned"),
    [("async_behind_wrapper", "a coroutine"), ("generator_behind_wrapper", "a generator")],
)
def test_a_handler_returning_a_coroutine_or_generator_buries_its_job_unretried(
    queue: Queue,
    spawn_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    function: str,
    returned: str,
) -> None:
    """Issue 18 item 1: a handler that returns a coroutine or generator (which start-up
    inspection cannot see, e.g. a lambda around an async function) did not do the work: the
    job is buried as a permanent failure with a clear reason, never retried nor deleted, and
    the coroutine is closed (no "never awaited" RuntimeWarning)."""
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    after = queue.put("work", {"out": str(out)})
    worker = spawn_worker(
        "--server",
        queue.server.address,
        "--tube",
        f"work=handlers_for_edges:{function}",
        "--max-retries",
        "3",
        "--backoff-base",
        "0",
    )
    [line] = worker.wait_outcomes(job_id)
    worker.wait_outcomes(after)
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(10) == 0
    assert "outcome=buried" in line
    assert "permanent failure" in line
    assert f"returned {returned}" in line
    stats = queue.stats(job_id)
    assert stats is not None
    assert stats["state"] == "buried" and stats["reserves"] == 1 and stats["releases"] == 0
    assert read_records(out) == []  # the work was never done
    assert not any("RuntimeWarning" in text or "never awaited" in text for text in worker.lines())
    assert not any("Traceback" in text for text in worker.lines())


# -- item 6: SIGHUP --------------------------------------------------------------------------


def test_sighup_finishes_and_deletes_the_running_job_then_exits_0(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Issue 18 item 6: SIGHUP is a graceful stop exactly like a first SIGTERM: the running
    job finishes and is deleted, no new job is taken, exit 0 (systemd / supervisor then start
    a fresh process: a graceful restart)."""
    # The running job finished and deleted, the waiting one not taken, exit 0: checked by
    # the helper, as for a first SIGTERM (test_worker_shutdown).
    worker, line = graceful_stop(queue, spawn_worker, tmp_path, signal.SIGHUP)
    assert "SIGHUP" in line  # and "finishing job <id>" (the helper checks that)
    assert "worker exiting: SIGHUP" in worker.lines()[-1]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (signal.SIGHUP, signal.SIGHUP),
        (signal.SIGHUP, signal.SIGTERM),
        (signal.SIGTERM, signal.SIGHUP),
    ],
)
def test_a_second_hup_or_term_hands_the_running_job_back_at_once(
    queue: Queue,
    spawn_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    first: int,
    second: int,
) -> None:
    """Issue 18 item 6: a second signal, HUP or TERM in any mix, does what a second SIGTERM
    does: the running job is released at once (priority kept) and the worker exits 0."""
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out), "seconds": 60}, priority=321)
    worker = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    wait_for(lambda: started(out, job_id), 10, "the handler to start")

    worker.signal(first)
    worker.wait_log("event=stopping")  # back-to-back signals may merge: wait for the first
    worker.signal(second)
    assert worker.wait_exit(10) == 0

    stats = queue.stats(job_id)
    assert stats is not None
    assert stats["state"] == "ready" and stats["pri"] == 321 and stats["releases"] == 1
    assert [r["event"] for r in read_records(out)] == ["started"]
    assert any(f"job={job_id} " in line and "outcome=released" in line for line in worker.lines())


def test_an_idle_worker_exits_0_on_sighup_and_takes_no_job(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Issue 18 item 6: an idle worker stops on SIGHUP like on SIGTERM: exit 0, no job taken
    on its way out."""
    out = tmp_path / "out"
    worker = spawn_worker("--server", queue.server.address, "--tube", RECORD)
    wait_for(lambda: queue.tube_stats("work")["current-waiting"] == 1, 10, "a waiting reserve")
    worker.signal(signal.SIGHUP)
    job_id = queue.put("work", {"out": str(out)})
    assert worker.wait_exit(10) == 0
    assert read_records(out) == []
    assert queue.state(job_id) == "ready"
    assert "worker exiting: SIGHUP" in worker.lines()[-1]


# -- item 15: NaN / Infinity bodies ----------------------------------------------------------


def test_nan_and_infinity_bodies_are_buried_as_invalid_json(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Issue 18 item 15: bodies with NaN / Infinity / -Infinity (which other clients' JSON
    and our producer refuse) are buried like any other invalid JSON, without running."""
    out = tmp_path / "out"
    bodies = [b"NaN", b'{"x": Infinity}', b"[1, -Infinity]", b'{"out": "%s", "n": NaN}']
    bodies[-1] = bodies[-1] % str(out).encode()
    ids = [queue.put("work", body) for body in bodies]
    good = queue.put("work", {"out": str(out), "n": 1.5})
    worker = spawn_worker("--server", queue.server.address, "--tube", RECORD)
    worker.wait_outcomes(good)
    for job_id in ids:
        [line] = worker.wait_outcomes(job_id)
        assert "outcome=buried" in line and "body is not valid JSON: " in line, line
        assert queue.state(job_id) == "buried"
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(10) == 0
    assert [r["id"] for r in read_records(out)] == [good]
