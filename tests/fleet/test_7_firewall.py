"""Priority 7: only inventory hosts reach beanstalkd (nftables table on the queue host)."""

from __future__ import annotations

from fleetlib import Fleet

PROBE = (
    'python3 -c "import socket,sys; s=socket.socket(); s.settimeout(3); '
    "s.connect(('{addr}', 11300)); s.sendall(b'stats\\r\\n'); "
    'sys.stdout.write(s.recv(16).decode())"'
)


def test_firewall_table_loaded(fleet: Fleet) -> None:
    fleet.check("queue", "nft list table inet beanfleet_beanstalkd")


def test_worker_reaches_queue(fleet: Fleet) -> None:
    out = fleet.check("worker1", PROBE.format(addr=fleet.address("queue")))
    assert out.startswith("OK"), out


def test_outsider_cannot_reach_queue(fleet: Fleet) -> None:
    res = fleet.run("outsider", PROBE.format(addr=fleet.address("queue")))
    assert res.returncode != 0, res.stdout
    assert "timed out" in res.stderr or "refused" in res.stderr, res.stderr
