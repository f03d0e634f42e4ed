#!/usr/bin/env bash
# scripts/fleet-image.sh RELEASE [--force]
#
# Build the docker image beanfleet/RELEASE:latest (RELEASE = bookworm|trixie)
# used by the Vagrant docker provider: a minimal Debian with systemd as PID 1,
# openssh-server, sudo, python3 (for Ansible) and iproute2, plus a `vagrant`
# user (passwordless sudo, Vagrant's insecure public key, taken from the
# installed vagrant package at build time). Nothing the roles install
# (beanstalkd, supervisor, nftables, python3-venv, ...) is baked in.
#
# The image is bootstrapped with mmdebstrap from the local apt repository
# (scripts/apt-repo.sh, run first) so image and repo hold the same package
# versions; its only apt source is that repo, expected bind-mounted read-only
# at /srv/apt/RELEASE (the Vagrantfile does that).
#
# Skipped when an image with the same inputs hash (label beanfleet.inputs-hash:
# this script, the package list, the repo index, the key) already exists; --force or
# BEANFLEET_FORCE_IMAGE=1 rebuilds.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=fleet-image

RELEASE="${1:-}"
check_release "$RELEASE"
FORCE="${BEANFLEET_FORCE_IMAGE:-0}"
[ "${2:-}" = "--force" ] && FORCE=1
IMAGE="beanfleet/$RELEASE:latest"

need_cmd mmdebstrap docker sha256sum
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap needs it here)"

take_lock "image-$RELEASE"
PUBKEYS="$(vagrant_pubkeys)"

# The image is built from (and must match) the local apt repository.
"$SCRIPTS_DIR/apt-repo.sh" "$RELEASE"
REPO="$(apt_repo_dir "$RELEASE")"

INPUTS_HASH="$(hash_inputs "$0" "$SCRIPTS_DIR/vagrant-user-hook.sh" "$REPO/Packages" -- "$RELEASE" "$IMAGE_PACKAGES" "$PUBKEYS")"
if [ "$FORCE" != 1 ] && \
   [ "$(docker image inspect --format '{{index .Config.Labels "beanfleet.inputs-hash"}}' "$IMAGE" 2>/dev/null || true)" = "$INPUTS_HASH" ]; then
    log "$IMAGE is up to date (inputs ${INPUTS_HASH:0:12})"
    exit 0
fi

OUT="$BUILD_DIR/images"
mkdir -p "$OUT"
TAR="$OUT/$RELEASE.tar"
WORK="$(mktemp -d "$BUILD_DIR/image-work.XXXXXX")"
trap 'rm -rf "$WORK" "$TAR.tmp"' EXIT
printf '%s\n' "$PUBKEYS" > "$WORK/authorized_keys"

# Files copied into the image by the customize hook.
mkdir -p "$WORK/files"
cat > "$WORK/files/beanfleet-local.sources" <<SRC
# The fleet hosts have no network: their only apt source is the local
# repository built by scripts/apt-repo.sh, bind-mounted read-only here.
Types: deb
URIs: file:/srv/apt/$RELEASE
Suites: ./
Trusted: yes
SRC
# Runs outside the chroot with $1 = chroot dir.
cat > "$WORK/customize.sh" <<'HOOK'
#!/bin/sh
set -eu
root="$1"; files="$2"
ch() { chroot "$root" "$@"; }

# apt: only the local repository.
: > "$root/etc/apt/sources.list"
rm -f "$root"/etc/apt/sources.list.d/*
install -m 0644 "$files/beanfleet-local.sources" "$root/etc/apt/sources.list.d/beanfleet-local.sources"
rm -f "$root/etc/apt/apt.conf.d/99mmdebstrap"

# systemd in a container: no consoles, no kernel tunables/mounts.
for u in getty@tty1.service console-getty.service serial-getty@.service \
         systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
         systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount \
         sys-kernel-tracing.mount dev-hugepages.mount systemd-firstboot.service \
         apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
         fstrim.timer; do
    ch systemctl mask "$u" >/dev/null 2>&1 || true
done

# Per-container identity: machine-id generated at boot, hostname from docker.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/etc/hostname"
HOOK
chmod +x "$WORK/customize.sh"

build() {
    rm -f "$TAR.tmp"
    mmdebstrap --variant=minbase --mode=root --format=tar \
        --include="$(comma_list "$IMAGE_PACKAGES")" \
        --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
        --customize-hook="$SCRIPTS_DIR/vagrant-user-hook.sh \"\$1\" $WORK/authorized_keys" \
        --customize-hook="$WORK/customize.sh \"\$1\" $WORK/files" \
        "$RELEASE" "$TAR.tmp" "deb [trusted=yes] file://$REPO ./" \
        >"$WORK/mmdebstrap.log" 2>&1 || { tail -n 20 "$WORK/mmdebstrap.log" >&2; return 1; }
}
log "building $IMAGE with mmdebstrap (from $REPO)"
retry 3 build || die "mmdebstrap failed for $RELEASE (log above)"
mv "$TAR.tmp" "$TAR"

log "importing $IMAGE"
docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' \
    --change "LABEL beanfleet.release=$RELEASE" \
    --change "LABEL beanfleet.inputs-hash=$INPUTS_HASH" \
    "$TAR" "$IMAGE" >/dev/null
# (docker import cannot set STOPSIGNAL: containers need --stop-signal=SIGRTMIN+3,
# see the Vagrantfile.)
rm -f "$TAR"
docker image prune -f --filter "label=beanfleet.release=$RELEASE" >/dev/null 2>&1 || true
log "$IMAGE built ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1/1e6 }'))"
