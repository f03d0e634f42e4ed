#!/usr/bin/env bash
# scripts/vm-accel.sh: print the libvirt domain type the VM fleet should use, `kvm` or
# `qemu` (plain emulation, TCG). BEANFLEET_LIBVIRT_DRIVER overrides the probe.
#
# /dev/kvm can exist and still not run a guest (seen: the vCPU never gets past GRUB's
# jump into the kernel). So the probe boots a real kernel under KVM with no root
# filesystem and waits (bounded) for its first console line; `kvm` only if it
# appears. The kernel is the one kept by scripts/vm-box.sh, else the host's. Without
# any kernel it trusts a usable /dev/kvm for now, and caches nothing: an unprobed
# guess must not outlive the box build (CI once validated the Vagrantfile before
# building the box, cached `kvm` and then failed `vagrant up` on this host). A probed
# answer is cached per host boot in $BUILD_DIR/vm-accel (the Vagrantfile runs this
# on each vagrant command).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=vm-accel

case "${BEANFLEET_LIBVIRT_DRIVER:-}" in
    kvm|qemu) echo "$BEANFLEET_LIBVIRT_DRIVER"; exit 0 ;;
    "") ;;
    *) die "BEANFLEET_LIBVIRT_DRIVER must be kvm or qemu (got '$BEANFLEET_LIBVIRT_DRIVER')" ;;
esac
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then echo qemu; exit 0; fi

CACHE="$BUILD_DIR/vm-accel"
BOOT_ID="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)"
if [ -f "$CACHE" ] && [ "$(head -n1 "$CACHE")" = "$BOOT_ID" ]; then
    sed -n 2p "$CACHE"
    exit 0
fi

kernel=""
for k in "$BUILD_DIR"/boxes/*.vmlinuz /boot/vmlinuz-"$(uname -r)" /boot/vmlinuz; do
    if [ -r "$k" ]; then kernel="$k"; break; fi
done
QEMU="$(command -v qemu-system-x86_64 || true)"
answer=kvm
if [ -n "$kernel" ] && [ -n "$QEMU" ]; then
    out="$(mktemp)"
    # panic=-1 + -no-reboot: qemu exits as soon as the kernel finds no root.
    timeout 20 "$QEMU" -accel kvm -cpu qemu64 -m 256 -display none -nodefaults -no-reboot \
        -kernel "$kernel" -append "console=ttyS0 panic=-1" -serial "file:$out" \
        >/dev/null 2>&1 || true
    grep -aq "Linux version" "$out" || answer=qemu
    rm -f "$out"
    log "KVM probe with $(basename "$kernel"): $answer"
    mkdir -p "$BUILD_DIR"
    printf '%s\n%s\n' "$BOOT_ID" "$answer" > "$CACHE"
fi
echo "$answer"
