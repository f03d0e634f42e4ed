"""Fleet tests: a real Vagrant/docker fleet per Debian release (see fleetlib.py).

make test-fleet                          # both releases, mixed managers
BEANFLEET_RELEASES=trixie pytest tests/fleet
"""

from fleetlib import (  # noqa: F401 (fixtures and hooks pytest finds here)
    fleet,
    pools,
    pytest_runtest_logreport,
    pytest_terminal_summary,
)


def pytest_configure(config: object) -> None:
    config.addinivalue_line(  # type: ignore[attr-defined]
        "markers", "vm: also runs against real VMs (make test-vm, BEANFLEET_PROVIDER=libvirt)"
    )
