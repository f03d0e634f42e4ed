"""The pure pieces, no server: handler specs, the retry policy, log line formats."""

from __future__ import annotations

import io
import json

import pytest
from beanfleet.errors import ConfigError, JobTimeout, PermanentFailure, RetryLater
from beanfleet.work.handlers import HandlerSpec, load_handlers
from beanfleet.work.joblog import JobLog, JobOutcome
from beanfleet.work.outcome import RetryPolicy, attempt_of, unfinished_of


def test_handler_spec_parses_dotted_module_and_attribute() -> None:
    spec = HandlerSpec.parse("mail.out=app.tasks:Mailer.send")
    assert (spec.tube, spec.module, spec.function) == ("mail.out", "app.tasks", "Mailer.send")


@pytest.mark.parametrize(
    "text", ["work", "work=mod", "=mod:fn", "work=:fn", "work=mod:", "work=1mod:fn", "w=m:f-g"]
)
def test_handler_spec_rejects_malformed(text: str) -> None:
    with pytest.raises(ConfigError):
        HandlerSpec.parse(text)


def test_load_handlers_imports_and_resolves() -> None:
    handlers = load_handlers(["a=os.path:join", "b=handlers_for_tests:record"])
    assert handlers["a"]("x", "y") == "x/y"  # type: ignore[arg-type]
    assert handlers["b"].__name__ == "record"


@pytest.mark.parametrize(
    ("reserves", "buries", "kicks", "attempt"),
    [(1, 0, 0, 1), (3, 0, 0, 3), (3, 1, 1, 2), (2, 2, 2, 1), (0, 0, 0, 1), (3, 0, 2, 3)],
)
def test_attempt_counts_reservations_minus_buries(
    reserves: int, buries: int, kicks: int, attempt: int
) -> None:
    # Kicks of delayed jobs (the last case: kicked twice in its retry backoff) count nothing.
    stats = {"reserves": reserves, "buries": buries, "kicks": kicks, "releases": 9}
    assert attempt_of(stats) == attempt


@pytest.mark.parametrize(
    ("reserves", "releases", "buries", "unfinished"),
    [(1, 0, 0, 0), (4, 0, 0, 3), (5, 4, 0, 0), (5, 1, 1, 2), (6, 2, 2, 1), (0, 0, 0, 0)],
)
def test_unfinished_counts_reservations_that_ended_with_no_outcome(
    reserves: int, releases: int, buries: int, unfinished: int
) -> None:
    stats = {"reserves": reserves, "releases": releases, "buries": buries, "kicks": 9}
    assert unfinished_of(stats) == unfinished


def test_crash_loop_buries_after_max_retries_plus_one_unfinished_starts() -> None:
    policy = RetryPolicy(max_retries=2)
    assert [policy.crashed_too_often(n) is None for n in (0, 1, 2, 3)] == [True] * 3 + [False]
    why = policy.crashed_too_often(3)
    assert why is not None and "3 attempts ended with no outcome" in why


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base=2, backoff_cap=30)
    for attempt, (low, high) in {1: (1, 2), 2: (2, 4), 3: (4, 8), 4: (8, 16), 9: (15, 30)}.items():
        delays = {policy.backoff(attempt) for _ in range(200)}
        assert min(delays) >= low and max(delays) <= high, (attempt, delays)
    assert len({policy.backoff(6) for _ in range(200)}) > 1  # jittered
    assert RetryPolicy(backoff_base=0).backoff(5) == 0
    assert policy.backoff(100000) <= 30  # no float overflow


def test_decide() -> None:
    policy = RetryPolicy(max_retries=2, backoff_base=0)
    assert policy.decide(1, ValueError(), "r").action == "release"
    assert policy.decide(2, JobTimeout(1), "r").action == "release"
    exhausted = policy.decide(3, ValueError(), "r")
    assert exhausted.action == "bury" and "retries exhausted after 3 attempts" in exhausted.reason
    assert policy.decide(1, PermanentFailure("x"), "r").action == "bury"
    later = policy.decide(1, RetryLater(2.5), "r")
    assert (later.action, later.delay) == ("release", 3)
    assert policy.decide(3, RetryLater(1), "r").action == "bury"


def test_text_log_quotes_values_with_spaces() -> None:
    log = JobLog("text", io.StringIO())
    line = log.format_job(JobOutcome(3, "t", 2, 0.5, "buried", None, 'bad "body"'))
    assert line.endswith(
        'job=3 tube=t attempt=2 duration=0.500s outcome=buried reason="bad \\"body\\""'
    )


def test_json_fast_path_matches_the_general_formatter() -> None:
    stream = io.StringIO()
    log = JobLog("json", stream)
    log.deleted(9, "t", None, 0.25)
    log.flush()
    fast = json.loads(stream.getvalue())
    general = json.loads(log.format_job(JobOutcome(9, "t", None, 0.25, "deleted")))
    fast.pop("ts"), general.pop("ts")
    assert fast == general
