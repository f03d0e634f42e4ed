"""Priority 7: only inventory hosts reach beanstalkd (nftables table on the queue host).

The outsider is the `outsider` container, or with VMs the controller itself: it is not in
the inventory either, and it has a route to every address of the queue VM."""

from __future__ import annotations

import pytest
from fleetlib import Fleet

PROBE = (
    'python3 -c "import socket,sys; s=socket.socket(); s.settimeout(3); '
    "s.connect(('{addr}', 11300)); s.sendall(b'stats\\r\\n'); "
    'sys.stdout.write(s.recv(16).decode())"'
)


@pytest.mark.vm
def test_firewall_table_loaded(fleet: Fleet) -> None:
    fleet.check("queue", "nft list table inet beanfleet_beanstalkd")


@pytest.mark.vm
def test_worker_reaches_queue(fleet: Fleet) -> None:
    out = fleet.check("worker1", PROBE.format(addr=fleet.address("queue")))
    assert out.startswith("OK"), out


@pytest.mark.vm
def test_outsider_cannot_reach_queue(fleet: Fleet) -> None:
    addresses = [fleet.address("queue")]
    if fleet.provider != "docker":  # the VM's other interface: libvirt's management network
        addresses.append(fleet.data["machines"]["queue"]["ssh_forwarded"].split(":")[0])
    for addr in addresses:
        res = fleet.run_outside(PROBE.format(addr=addr))
        assert res.returncode != 0, (addr, res.stdout)
        assert "timed out" in res.stderr or "refused" in res.stderr, (addr, res.stderr)
