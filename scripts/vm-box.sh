#!/usr/bin/env bash
# scripts/vm-box.sh [RELEASE] [--force]
#
# Build the Vagrant box beanfleet/RELEASE (libvirt provider, qcow2) locally and
# `vagrant box add` it: the VM fleet's stand-in for debian/RELEASE64 where no box
# can be downloaded. RELEASE: bookworm (default) | trixie.
#
#   1. mmdebstrap a root filesystem: cloud kernel, systemd, sshd, sudo, python3 (+apt
#      bindings, so Ansible's first apt task is quick), a `vagrant` user with Vagrant's
#      insecure public key (from the installed vagrant) and passwordless sudo;
#      systemd-networkd (DHCP on eth0; Vagrant configures eth1), Debian's archive as
#      the apt source (the VMs reach it through libvirt's NAT, as on a laptop).
#   2. A raw disk with one partition, written without loop devices: the ext4
#      filesystem is made in place at the partition's offset (mkfs.ext4 -d), GRUB's
#      boot sector and core image are written with dd.
#   3. qemu-img convert to compressed qcow2, tar it with metadata.json, box add.
#
# Cached by content: skipped when box beanfleet/RELEASE was added from the same inputs
# (this script, release, packages, mirror, key); --force (BEANFLEET_FORCE_BOX=1)
# rebuilds. A rebuilt box also drops libvirt's copy of the old one (its volume).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=vm-box

RELEASE="${1:-bookworm}"
check_release "$RELEASE"
FORCE="${BEANFLEET_FORCE_BOX:-0}"
[ "${2:-}" = "--force" ] && FORCE=1
BOX="beanfleet/$RELEASE"
DISK_GB=8

need_cmd mmdebstrap sfdisk mkfs.ext4 grub-mkimage qemu-img vagrant tar sha256sum
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap needs it here)"
GRUB_DIR=/usr/lib/grub/i386-pc
[ -f "$GRUB_DIR/boot.img" ] || die "$GRUB_DIR/boot.img missing (apt-get install grub-pc-bin)"

BOX_PACKAGES="linux-image-cloud-amd64 systemd-sysv systemd-resolved udev dbus openssh-server sudo
 python3 python3-apt iproute2 ca-certificates"

OUT="$BUILD_DIR/boxes"
mkdir -p "$OUT"
take_lock "box-$RELEASE"
PUBKEYS="$(vagrant_pubkeys)"
SOURCES="$(debian_sources "$RELEASE")"
INPUTS_HASH="$(hash_inputs "$0" "$SCRIPTS_DIR/lib.sh" "$SCRIPTS_DIR/vagrant-user-hook.sh" -- "$RELEASE" "$BOX_PACKAGES" "$SOURCES" "$PUBKEYS" "$DISK_GB")"
STAMP="$OUT/$RELEASE.inputs-hash"

box_listed() { vagrant box list --machine-readable 2>/dev/null | grep -q ",box-name,$BOX\$"; }
if [ "$FORCE" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$INPUTS_HASH" ] && box_listed; then
    log "$BOX is up to date (inputs ${INPUTS_HASH:0:12})"
    exit 0
fi

WORK="$(mktemp -d "$BUILD_DIR/box-work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"
printf '%s\n' "$PUBKEYS" > "$WORK/authorized_keys"

# Runs outside the chroot: $1 = root filesystem (after scripts/vagrant-user-hook.sh).
cat > "$WORK/customize.sh" <<'HOOK'
#!/bin/sh
set -eu
root="$1"
ch() { chroot "$root" "$@"; }

# Network: DHCP on eth0 only (libvirt's management network). Vagrant writes the
# private network's file for eth1 itself when it sees systemd-networkd active.
cat > "$root/etc/systemd/network/10-eth0.network" <<'NET'
[Match]
Name=eth0

[Network]
DHCP=yes
NET
ch systemctl enable systemd-networkd.service systemd-resolved.service
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

printf 'LABEL=root / ext4 errors=remount-ro 0 1\n' > "$root/etc/fstab"
printf 'localhost\n' > "$root/etc/hostname"
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/etc/apt/apt.conf.d/99mmdebstrap"
ch systemctl mask apt-daily.timer apt-daily-upgrade.timer >/dev/null

# GRUB from the build host: modules next to a fixed config. /vmlinuz and
# /initrd.img follow kernel upgrades (Debian keeps those links).
mkdir -p "$root/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
cat > "$root/boot/grub/grub.cfg" <<'CFG'
set timeout=1
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "Debian" {
    search --no-floppy --label --set=root root
    linux /vmlinuz root=LABEL=root ro console=tty0 console=ttyS0,115200 net.ifnames=0 biosdevname=0
    initrd /initrd.img
}
CFG
HOOK
chmod +x "$WORK/customize.sh"

rootfs() {
    rm -rf "$ROOTFS"
    local mirrors=()
    while IFS= read -r line; do mirrors+=("$line"); done <<<"$SOURCES"
    mmdebstrap --variant=apt --mode=root --format=directory \
        --aptopt='Acquire::Retries "3"' \
        --include="$(comma_list "$BOX_PACKAGES")" \
        --customize-hook="$SCRIPTS_DIR/vagrant-user-hook.sh \"\$1\" $WORK/authorized_keys" \
        --customize-hook="$WORK/customize.sh \"\$1\"" \
        "$RELEASE" "$ROOTFS" "${mirrors[@]}" >"$WORK/mmdebstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/mmdebstrap.log" >&2; return 1; }
}
log "$BOX: root filesystem (mmdebstrap)"
timed "box rootfs $RELEASE" retry 3 rootfs || die "mmdebstrap failed for $RELEASE (log above)"
# mmdebstrap empties the package lists last; an empty lists directory dated now reads as
# "updated just now" to apt tasks with cache_valid_time. Date it as never updated.
touch -d @0 "$ROOTFS/var/lib/apt/lists"
# The kernel, kept for scripts/vm-accel.sh's KVM probe.
cp "$(readlink -f "$ROOTFS/vmlinuz")" "$OUT/$RELEASE.vmlinuz"

# One bootable partition from sector 2048 (1 MiB) to the end of the disk.
disk() {
    local raw="$WORK/box.raw" offset=1048576 size=$((DISK_GB * 1024 * 1024 * 1024))
    rm -f "$raw"
    truncate -s "$size" "$raw"
    printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$raw"
    mkfs.ext4 -q -F -L root -d "$ROOTFS" -E offset=$offset "$raw" $(((size - offset) / 1024))k
    grub-mkimage -O i386-pc -o "$WORK/core.img" -p '(hd0,msdos1)/boot/grub' biosdisk part_msdos ext2
    # boot.img's code only (the partition table after byte 440 stays), core.img from sector 1.
    dd if="$GRUB_DIR/boot.img" of="$raw" bs=440 count=1 conv=notrunc status=none
    dd if="$WORK/core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none
    qemu-img convert -c -O qcow2 "$raw" "$WORK/box.img"
    rm -f "$raw"
    printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$DISK_GB" > "$WORK/metadata.json"
    cat > "$WORK/Vagrantfile" <<'VF'
# beanfleet's locally built Debian box (scripts/vm-box.sh). Provider settings
# (driver, CPU model) belong to the project's Vagrantfile, not to the box.
Vagrant.configure("2") do |config|
end
VF
    tar -C "$WORK" -cf "$OUT/$RELEASE.box" metadata.json Vagrantfile box.img
}
log "$BOX: disk image"
timed "box disk $RELEASE" disk

# libvirt keeps an uploaded copy of each box as a volume; a rebuilt box must not
# boot the old one.
if command -v virsh >/dev/null 2>&1; then
    for vol in $(timeout 60 virsh -q vol-list default 2>/dev/null | awk '{ print $1 }' \
                 | grep "^beanfleet-VAGRANTSLASH-${RELEASE}_vagrant_box_image" || true); do
        timeout 60 virsh -q vol-delete --pool default "$vol" >/dev/null || true
    done
fi
timed "box add $RELEASE" vagrant box add --force --name "$BOX" "$OUT/$RELEASE.box" >/dev/null
echo "$INPUTS_HASH" > "$STAMP"
log "$BOX added ($(du -h "$OUT/$RELEASE.box" | cut -f1))"
