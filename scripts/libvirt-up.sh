#!/usr/bin/env bash
# scripts/libvirt-up.sh [--restart]
#
# Make libvirt usable for the VM fleet on a host without systemd as PID 1 (CI,
# containers): start virtlogd and libvirtd when they are not running, wait until
# libvirtd answers, and define + start the `default` storage pool (where
# vagrant-libvirt keeps box images and disks). Idempotent. --restart stops
# libvirtd first: it has been seen to hang in its qemu capability probe, and a
# fresh daemon is the cure. On a host where systemd runs libvirt, it only
# checks that libvirtd answers and the pool exists.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=libvirt-up

POOL=default
POOL_DIR="${BEANFLEET_LIBVIRT_POOL_DIR:-/var/lib/libvirt/images}"
need_cmd virsh libvirtd virtlogd
[ "$(id -u)" -eq 0 ] || die "run as root"
export LIBVIRT_DEFAULT_URI=qemu:///system

answers() { timeout 20 virsh -q version >/dev/null 2>&1; }
systemd_host() { [ -d /run/systemd/system ]; }

stop_libvirtd() {
    pkill -x libvirtd || true
    for _ in $(seq 1 50); do pgrep -x libvirtd >/dev/null || return 0; sleep 0.2; done
    pkill -9 -x libvirtd || true
    for _ in $(seq 1 50); do pgrep -x libvirtd >/dev/null || return 0; sleep 0.2; done
    die "libvirtd does not exit"
}
# Running domains (qemu processes) survive a restart of the daemon.
start_libvirtd() {
    pgrep -x virtlogd >/dev/null || detached virtlogd -d </dev/null >/dev/null 2>&1
    pgrep -x libvirtd >/dev/null || detached libvirtd -d </dev/null >/dev/null 2>&1
    for _ in $(seq 1 60); do answers && return 0; sleep 0.5; done
    return 1
}

# udev gives /dev/kvm to group kvm (0660) on a normal host; without udev it stays
# root-only. Then libvirtd finds KVM in qemu's probe (run as root) but not for
# the qemu user, marks its capability cache outdated on every call and probes
# qemu again each time: every API call takes seconds to minutes ("hangs").
if [ -c /dev/kvm ] && getent group kvm >/dev/null && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
    log "/dev/kvm: group kvm, mode 0660 (as udev sets it)"
fi

if systemd_host; then
    answers || die "libvirtd does not answer (systemctl status libvirtd)"
else
    if [ "${1:-}" = "--restart" ]; then
        log "restarting libvirtd"
        stop_libvirtd
    fi
    if ! start_libvirtd; then
        log "libvirtd does not answer; starting it afresh"
        stop_libvirtd
        start_libvirtd || die "libvirtd does not answer (virsh version timed out)"
    fi
fi
# The first use makes libvirtd probe qemu's capabilities (seen to hang once):
# do it here, bounded, so a stall costs a restart now and not a failed `vagrant up`.
if ! timeout 120 virsh -q domcapabilities --virttype qemu >/dev/null 2>&1; then
    log "libvirtd's qemu probe did not answer in 120 s; restarting libvirtd"
    systemd_host || { stop_libvirtd; start_libvirtd || die "libvirtd does not answer after a restart"; }
    timeout 120 virsh -q domcapabilities --virttype qemu >/dev/null 2>&1 \
        || die "libvirtd's qemu capability probe hangs (twice)"
fi

if ! timeout 30 virsh -q pool-info "$POOL" >/dev/null 2>&1; then
    mkdir -p "$POOL_DIR"
    timeout 30 virsh -q pool-define-as "$POOL" dir --target "$POOL_DIR" >/dev/null
fi
if [ "$(timeout 30 virsh -q pool-info "$POOL" | awk '$1 == "State:" { print $2 }')" != running ]; then
    timeout 60 virsh -q pool-start "$POOL" >/dev/null
fi
timeout 30 virsh -q pool-autostart "$POOL" >/dev/null 2>&1 || true
log "libvirtd answers; storage pool $POOL at $POOL_DIR"
