"""A worker over two real beanstalkd servers, one of them killed and restarted.

(From tests/multi/test_multi_admin.py: its admin and exporter tests now run with one server
and with two in tests/admin/test_admin_servers.py and tests/metrics/test_exporter.py.)"""

from __future__ import annotations

import threading
from typing import Any

from beanfleet.wire.jobref import JobRef
from beanfleet.work.loop import Worker
from beanstalkd_server import Beanstalkd
from waiting import wait_for
from worker_support import put_direct, tube_count


def test_one_worker_process_serves_both_servers_and_survives_a_kill(
    beanstalkd: Beanstalkd, second: Beanstalkd
) -> None:
    a, b = beanstalkd, second
    seen: list[Any] = []

    def handler(data: Any, job: Any) -> None:
        seen.append((data, job.id))

    worker = Worker([a.address, b.address], {"w": handler}, state_dir=None)
    thread = threading.Thread(target=worker.run, daemon=True)
    for n in range(5):
        put_direct(a, "w", b"%d" % n)
        put_direct(b, "w", b"%d" % (100 + n))
    thread.start()
    try:
        wait_for(lambda: len(seen) == 10, 20, "both servers' jobs to run")
        ids = [job_id for _, job_id in seen]
        assert all(isinstance(job_id, JobRef) for job_id in ids)
        assert len(set(ids)) == 10  # job 1 on a and job 1 on b are different jobs
        assert {str(job_id) for job_id in ids} >= {f"{a.address}/1", f"{b.address}/1"}
        a.kill()
        for n in range(5):
            put_direct(b, "w", b"%d" % (200 + n))
        wait_for(lambda: len(seen) == 15, 20, "b's jobs to run while a is down")
        a.start()
        put_direct(a, "w", b"300")
        wait_for(lambda: any(d == 300 for d, _ in seen), 30, "a's job to run after its restart")
        assert tube_count(a, "w") == tube_count(b, "w") == 0
        assert tube_count(a, "w", "reserved") == 0
    finally:
        worker.request_stop()
        thread.join(timeout=15)
    assert not thread.is_alive()
    data = [d for d, _ in seen]
    assert len(data) == len(set(data))  # nothing ran twice
