#!/usr/bin/env bash
# Install the Debian packages this machine (the controller) needs for `make up` and
# `make test`, when any is missing. The one list of them: .ci/run uses it too.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=host-packages

PACKAGES=(
    beanstalkd supervisor          # the real servers the unit tests start
    python3-venv make              # the project venv
    docker.io vagrant mmdebstrap   # the local fleet: systemd containers from locally built images
    dpkg-dev nftables iproute2     # the fleet's local apt repository and firewall checks
    shellcheck                     # `make lint` checks these scripts
    prometheus                     # promtool: the alert rules and dashboard queries tests
    # `make test-vm`: real VMs with vagrant-libvirt (plain qemu where KVM does not work),
    # and the tools scripts/vm-box.sh builds their box with
    vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
    dnsmasq-base ebtables iptables fdisk grub-pc-bin
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    log "all ${#PACKAGES[@]} packages installed"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run as root, or apt-get install them)"
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
