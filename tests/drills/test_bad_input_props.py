"""Property-based bad input on the worker's decode-and-dispatch path, on a real server.

The worker's decoding is part of its loop (``beanfleet.work.loop``), not a function of its
own, so these tests go through the public surface: they put raw bodies with greenstalk on a tube one
``beanfleet work`` process watches, followed by a numbered good job, and check: the worker
is still up; every body that is valid UTF-8 JSON (by Python's own ``json.loads``, minus
NaN / Infinity) reached the handler exactly once as data; every other body was buried; the
good job ran once; the tube holds nothing ready, reserved or delayed.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import greenstalk
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DRILLS = Path(__file__).resolve().parents[2] / "drills"
if str(DRILLS) not in sys.path:
    sys.path.insert(0, str(DRILLS))

from harness import Beanstalkd, ExecLog, WorkerProc, tube_counts, wait_for

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("beanstalkd") is None, reason="beanstalkd not installed"),
]

TUBE = "props"
_seq = itertools.count()


class Rig:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log = ExecLog(workdir / "exec.log")
        self.server = Beanstalkd(binlog_dir=None, max_job_size=1 << 16)
        self.server.start()
        self.worker = self._new_worker()
        self.restarts = 0

    def _new_worker(self) -> WorkerProc:
        return WorkerProc(
            self.server.address,
            self.workdir,
            f"w{next(_seq)}",
            self.log.path,
            {TUBE: "record"},
        ).start()

    def close(self) -> None:
        self.worker.kill()
        self.server.kill()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("props"))
    try:
        yield r
    finally:
        r.close()


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_ok(body: bytes) -> bool:
    """Valid UTF-8 JSON, as the worker reads it: Python's json.loads minus NaN / Infinity /
    -Infinity, which the worker buries like any other invalid JSON (issue 18 item 15)."""
    try:
        json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

odd_json = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),  # NaN/Infinity: Python-only, buried
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"1e999",
            b"-0",
            b'"\\ud800"',
            b"[]",
            b"{}",
            b"null",
            b" 1 ",
            b'{"a":1,"a":2}',
            b'{"seq": "1"}',
            b'{"seq": true}',
            b'{"seq": 1.5}',
        ]
    ),
    st.integers(min_value=4000, max_value=5000).map(lambda n: b"9" * n),  # int digit limit
    st.integers(min_value=1, max_value=400).map(lambda n: b"[" * n + b"]" * n),
)

bodies = st.lists(st.one_of(st.binary(max_size=64), odd_json), min_size=1, max_size=6)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=bodies)
def test_random_bodies_never_hurt_the_worker_or_other_jobs(rig: Rig, batch: list[bytes]) -> None:
    before = rig.log.stats()
    buried_before = tube_counts(rig.server.pair, TUBE)["buried"]
    seq = next(_seq) + 10_000_000
    with greenstalk.Client(rig.server.pair, encoding=None, use=TUBE) as client:
        for body in batch:
            client.put(body, ttr=30)
        client.put(b'{"seq": %d}' % seq)
    expected_data = sum(1 for b in batch if json_ok(b) and not _numbered(b))
    expected_numbered = [b for b in batch if json_ok(b) and _numbered(b)]
    expected_buried = sum(1 for b in batch if not json_ok(b))
    wait_for(
        lambda: seq in rig.log.stats().done_seqs or not rig.worker.alive,
        20,
        "the good job behind the batch",
        0.02,
    )
    assert rig.worker.alive, f"worker died on {batch!r}: {rig.worker.tail()}"
    wait_for(
        lambda: tube_counts(rig.server.pair, TUBE)["buried"] == buried_before + expected_buried,
        10,
        "the bad bodies to be buried",
        0.02,
    )
    after = rig.log.stats()
    counts = tube_counts(rig.server.pair, TUBE)
    assert counts["ready"] == counts["reserved"] == counts["delayed"] == 0, counts
    assert after.dones[seq] == 1
    ran_as_data = after.unnumbered["done"] - before.unnumbered["done"]
    numbered = sum(after.dones.values()) - sum(before.dones.values()) - 1
    assert ran_as_data + numbered == expected_data + len(expected_numbered), batch


def _numbered(body: bytes) -> bool:
    data = json.loads(body.decode("utf-8"))
    seq = data.get("seq") if isinstance(data, dict) else None
    return isinstance(seq, int) and not isinstance(seq, bool)
