# shellcheck shell=bash
# Common helpers for the beanfleet fleet scripts. Source it, don't run it.
#   REPO_ROOT  the git checkout (located from this file, never hard-coded)
#   BUILD_DIR  build outputs (default $REPO_ROOT/build, override BEANFLEET_BUILD_DIR)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BEANFLEET_BUILD_DIR:-$REPO_ROOT/build}"
SCRIPTS_DIR="$REPO_ROOT/scripts"
export REPO_ROOT BUILD_DIR SCRIPTS_DIR

# Debian mirror used to fill the local apt repository (the only place that
# downloads .debs). Override for a local mirror / snapshot.
BEANFLEET_DEBIAN_MIRROR="${BEANFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BEANFLEET_SECURITY_MIRROR="${BEANFLEET_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

SUPPORTED_RELEASES="bookworm trixie"

log()  { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${LOG_TAG:-beanfleet}" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }

check_release() {
    local r="${1:-}"
    case " $SUPPORTED_RELEASES " in
        *" $r "*) ;;
        *) die "unsupported release '${r}' (expected one of: $SUPPORTED_RELEASES)";;
    esac
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "required command '$c' not found (apt-get install the package that provides it)"
    done
}

# sha256 of files and strings: hash_inputs FILE... -- STRING...
hash_inputs() {
    {
        while [ $# -gt 0 ] && [ "$1" != "--" ]; do
            printf 'file %s\n' "$(basename "$1")"
            cat "$1"
            shift
        done
        [ $# -gt 0 ] && shift
        printf 'str %s\n' "$@"
    } | sha256sum | cut -d' ' -f1
}

# retry N CMD...: run CMD up to N times; between attempts run $RETRY_CLEANUP
# (a command string) when set.
retry() {
    # (odd local names: bash locals are visible to the commands it runs)
    local _retry_max="$1" _retry_i=1; shift
    while :; do
        if "$@"; then return 0; fi
        if [ "$_retry_i" -ge "$_retry_max" ]; then
            log "failed after $_retry_max attempts: $*"
            return 1
        fi
        log "attempt $_retry_i/$_retry_max failed: $*; retrying"
        if [ -n "${RETRY_CLEANUP:-}" ]; then eval "$RETRY_CLEANUP" || true; fi
        _retry_i=$((_retry_i + 1))
        sleep "$_retry_i"
    done
}

# timed LABEL CMD...: run CMD, print its wall time, record it in
# $BUILD_DIR/timings.log. Returns CMD's status.
timed() {
    local _t_label="$1"; shift
    local _t_start _t_end _t_rc=0 _t_secs
    _t_start=$(date +%s.%N)
    "$@" || _t_rc=$?
    _t_end=$(date +%s.%N)
    _t_secs=$(awk -v s="$_t_start" -v e="$_t_end" 'BEGIN { printf "%.1f", e - s }')
    log "TIMING ${_t_label}: ${_t_secs}s (exit ${_t_rc})"
    mkdir -p "$BUILD_DIR"
    printf '%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$_t_label" "$_t_secs" "$_t_rc" >> "$BUILD_DIR/timings.log"
    return "$_t_rc"
}

# Packages baked into the fleet image (scripts/fleet-image.sh). Keep this
# minimal: everything the roles install (beanstalkd, supervisor, nftables,
# python3-venv, ...) must NOT be here, so the roles are tested for real.
export IMAGE_PACKAGES="systemd systemd-sysv dbus openssh-server sudo python3 iproute2"

# Packages the roles (and the tests) may install on fleet hosts; the local apt
# repository holds them plus their full dependency closure on top of the
# image. Add more without editing: BEANFLEET_APT_EXTRA="pkg1 pkg2".
export REPO_PACKAGES="beanstalkd supervisor nftables python3-venv python3-pip python3-apt python3-packaging
 python3-setuptools acl rsync netcat-openbsd procps curl ca-certificates lsof psmisc less
 prometheus
 ${BEANFLEET_APT_EXTRA:-}"

# apt sources lines (one-line format) of the Debian archive for RELEASE.
debian_sources() {
    local r="$1"
    printf 'deb %s %s main\n' "$BEANFLEET_DEBIAN_MIRROR" "$r"
    printf 'deb %s %s-updates main\n' "$BEANFLEET_DEBIAN_MIRROR" "$r"
    printf 'deb %s %s-security main\n' "$BEANFLEET_SECURITY_MIRROR" "$r"
}

# Comma-separated list for mmdebstrap --include.
comma_list() { echo "$*" | tr -s ' \n\t' ',' | sed 's/^,//; s/,$//'; }

# Local apt repository of RELEASE on the controller.
apt_repo_dir() { echo "$BUILD_DIR/apt/$1"; }

# Python environment on the controller that has ansible-core (ansible-playbook)
# and pip; someone else's `make venv` creates it.
BEANFLEET_VENV="${BEANFLEET_VENV:-$REPO_ROOT/.venv}"
export BEANFLEET_VENV

# A python that has pip, for building the wheelhouse.
controller_python() {
    if [ -x "$BEANFLEET_VENV/bin/python" ] && "$BEANFLEET_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        echo "$BEANFLEET_VENV/bin/python"
    elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
        command -v python3
    else
        die "no python with pip found (create $BEANFLEET_VENV, or apt-get install python3-pip)"
    fi
}

# Fleet state (Vagrant dotfile dir, inventory, ssh config) for one
# release/manager combination, so several fleets can live side by side.
fleet_name() {
    local name="${BEANFLEET_RELEASE:-bookworm}-${BEANFLEET_MANAGER:-systemd}"
    [ "${BEANFLEET_PROVIDER:-docker}" = docker ] || name="$name-$BEANFLEET_PROVIDER"
    echo "$name"
}
fleet_dir() { echo "$BUILD_DIR/fleets/$(fleet_name)"; }

# take_lock NAME: serialise builds of one shared output (several fleets may
# be brought up at the same time). Held until the calling script exits.
take_lock() {
    mkdir -p "$BUILD_DIR/locks"
    exec 9>"$BUILD_DIR/locks/$1.lock"
    if ! flock -n 9; then
        log "waiting for another build of $1"
        flock 9
    fi
}

# Vagrant's insecure public key(s), from the installed vagrant (never from this
# repository): the fleet images and the VM box authorise them for user vagrant.
# BEANFLEET_VAGRANT_PUBKEY may point at a file instead.
vagrant_pubkeys() {
    local files=()
    if [ -n "${BEANFLEET_VAGRANT_PUBKEY:-}" ]; then
        files=("$BEANFLEET_VAGRANT_PUBKEY")
    else
        mapfile -t files < <({
            dpkg -L vagrant 2>/dev/null || true
            # upstream installer (/opt/vagrant) and gem installs
            compgen -G '/opt/vagrant/embedded/gems/*/gems/vagrant-*/keys/vagrant.pub*' || true
            compgen -G '/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub*' || true
            compgen -G '/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub*' || true
            compgen -G '/var/lib/gems/*/gems/vagrant-*/keys/vagrant.pub*' || true
        } | grep -E '/keys/vagrant\.pub(\.[a-z0-9]+)?$' | sort -u)
    fi
    [ "${#files[@]}" -gt 0 ] || die "Vagrant's insecure public key not found (is vagrant installed? or set BEANFLEET_VAGRANT_PUBKEY)"
    local keys
    keys="$(cat "${files[@]}" | grep -E '^(ssh-|ecdsa-)' | sort -u)"
    [ -n "$keys" ] || die "no public key lines in ${files[*]}"
    printf '%s\n' "$keys"
}

# detached CMD...: start a daemon with no file descriptor of ours but 0-2 (redirect
# those yourself). A daemon that inherits, say, a flock(1)ed lock file holds that
# lock for as long as it runs.
detached() {
    (
        for fd in /proc/self/fd/*; do
            fd="${fd##*/}"
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
        done
        exec "$@"
    )
}
