#!/usr/bin/env bash
# scripts/fleet-test.sh [RELEASE...] [-- PYTEST-ARGS]
#
# The fleet stage of CI: for each release (default: bookworm trixie) bring up one fleet
# with BEANFLEET_MANAGER=mixed (worker1 systemd, worker2 supervisor), run tests/fleet
# against it and tear it down (tests/fleet/conftest.py does the up/down). Fails, rather
# than skips, when docker is unavailable (BEANFLEET_REQUIRE_FLEET=1).
#
#   scripts/fleet-test.sh                    # both releases
#   scripts/fleet-test.sh trixie -- -x -k firewall
#   BEANFLEET_KEEP_FLEET=1 / BEANFLEET_REUSE_FLEET=1   keep / reuse the fleet (debugging)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

releases=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    check_release "$1"
    releases+=("$1")
    shift
done
[ "${1:-}" = "--" ] && shift
[ "${#releases[@]}" -gt 0 ] || releases=(bookworm trixie)

export BEANFLEET_RELEASES="${releases[*]}"
export BEANFLEET_REQUIRE_FLEET="${BEANFLEET_REQUIRE_FLEET:-1}"
cd "$REPO_ROOT"
exec "$BEANFLEET_VENV/bin/pytest" tests/fleet "$@"
